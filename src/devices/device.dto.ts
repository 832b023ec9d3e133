import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsBoolean, IsOptional, IsString, Length, Matches } from 'class-validator';
import { SLUG_PATTERN } from '../tenants/tenant.dto';

export const DEVICE_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
const NAME_MESSAGE = 'must be 1-64 letters, digits, dots, dashes or underscores';

export class CreateDeviceDto {
  @ApiProperty({ example: 'sensor-1', pattern: DEVICE_NAME_PATTERN.source })
  @IsString()
  @Matches(DEVICE_NAME_PATTERN, { message: NAME_MESSAGE })
  name!: string;

  @ApiPropertyOptional({ description: 'omit to have one generated and returned once', minLength: 8, maxLength: 256 })
  @IsOptional()
  @IsString()
  @Length(8, 256)
  password?: string;

  @ApiPropertyOptional({ default: true }) @IsOptional() @IsBoolean() enabled?: boolean;
}

export class UpdateDeviceDto {
  @ApiPropertyOptional() @IsOptional() @IsBoolean() enabled?: boolean;
}

export class SetPasswordDto {
  @ApiPropertyOptional({ description: 'omit (or send no body) to have one generated and returned once', minLength: 8, maxLength: 256 })
  @IsOptional()
  @IsString()
  @Length(8, 256)
  password?: string;
}

export class DeviceParams {
  @IsString() @Matches(SLUG_PATTERN, { message: 'is not a tenant slug' }) slug!: string;
  @IsString() @Matches(DEVICE_NAME_PATTERN, { message: 'is not a device name' }) name!: string;
}
