import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  IsIn,
  IsInt,
  IsOptional,
  IsString,
  Matches,
  Max,
  Min,
  registerDecorator,
  ValidateIf,
  ValidationOptions,
} from 'class-validator';
import { DEVICE_NAME_PATTERN } from '../devices/device.dto';
import { SLUG_PATTERN } from '../tenants/tenant.dto';
import { topicFilterError } from './topic-filter';

/** An MQTT topic filter, `${device}` and `${clientid}` placeholders allowed. */
function IsTopicFilter(options?: ValidationOptions): PropertyDecorator {
  return (target, propertyName) =>
    registerDecorator({
      name: 'isTopicFilter',
      target: target.constructor,
      propertyName: propertyName as string,
      options,
      validator: {
        validate: (value: unknown) => typeof value === 'string' && topicFilterError(value) === null,
        defaultMessage: (args) =>
          typeof args?.value === 'string'
            ? `is not an MQTT topic filter: ${topicFilterError(args.value)}`
            : 'must be an MQTT topic filter string',
      },
    });
}

export const ACL_ACTIONS = ['publish', 'subscribe', 'all'] as const;
export const ACL_PERMISSIONS = ['allow', 'deny'] as const;

export class CreateAclRuleDto {
  @ApiPropertyOptional({ type: String, nullable: true, description: 'device name; null or absent: every device of the tenant' })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsString()
  @Matches(DEVICE_NAME_PATTERN, { message: 'is not a device name' })
  device?: string | null;

  @ApiProperty({ enum: ACL_ACTIONS }) @IsIn(ACL_ACTIONS) action!: (typeof ACL_ACTIONS)[number];

  @ApiProperty({ example: 'sensors/${device}/#' }) @IsTopicFilter() topic!: string;

  @ApiProperty({ enum: ACL_PERMISSIONS }) @IsIn(ACL_PERMISSIONS) permission!: (typeof ACL_PERMISSIONS)[number];

  @ApiPropertyOptional({ default: 0, description: 'higher wins; deny wins at equal priority' })
  @IsOptional()
  @IsInt()
  @Min(-1_000_000)
  @Max(1_000_000)
  priority?: number;
}

export class UpdateAclRuleDto {
  @ApiPropertyOptional({ type: String, nullable: true })
  @IsOptional()
  @ValidateIf((_, v) => v !== null)
  @IsString()
  @Matches(DEVICE_NAME_PATTERN, { message: 'is not a device name' })
  device?: string | null;

  @ApiPropertyOptional({ enum: ACL_ACTIONS }) @IsOptional() @IsIn(ACL_ACTIONS) action?: (typeof ACL_ACTIONS)[number];
  @ApiPropertyOptional() @IsOptional() @IsTopicFilter() topic?: string;
  @ApiPropertyOptional({ enum: ACL_PERMISSIONS }) @IsOptional() @IsIn(ACL_PERMISSIONS) permission?: (typeof ACL_PERMISSIONS)[number];
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(-1_000_000) @Max(1_000_000) priority?: number;
}

export class AclRuleParams {
  @IsString() @Matches(SLUG_PATTERN, { message: 'is not a tenant slug' }) slug!: string;
  @IsString() @Matches(/^[0-9a-z]{22}$/, { message: 'is not a rule id' }) id!: string;
}
