import { IsOptional, IsString, Length, Matches } from 'class-validator';
import { DEVICE_NAME_PATTERN } from '../devices/device.dto';
import { PageQuery } from '../common/pagination';
import { SLUG_PATTERN } from '../tenants/tenant.dto';

export class SessionListQuery extends PageQuery {
  @IsOptional() @IsString() @Matches(DEVICE_NAME_PATTERN, { message: 'is not a device name' }) device?: string;
  @IsOptional() @IsString() @Length(1, 65535) clientIdPrefix?: string;
}

export class SessionParams {
  @IsString() @Matches(SLUG_PATTERN, { message: 'is not a tenant slug' }) slug!: string;
  // [MQTT-3.1.3-4]: a UTF-8 string of up to 65535 bytes; never empty once connected
  @IsString() @Length(1, 65535) @Matches(/^[^\u0000]*$/, { message: 'must not contain U+0000' }) clientId!: string;
}
