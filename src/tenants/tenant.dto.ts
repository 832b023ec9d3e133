import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsBoolean, IsIn, IsInt, IsOptional, IsString, Length, Matches, Max, Min, ValidateNested } from 'class-validator';

export const SLUG_PATTERN = /^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/;

export class TenantLimitsDto {
  @ApiPropertyOptional({ example: 1000 }) @IsOptional() @IsInt() @Min(1) @Max(1_000_000) maxConnections?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(10_000_000) maxMessagesPerSecond?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(10_000_000) maxClientMessagesPerSecond?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(256 * 1024 * 1024) maxPayloadBytes?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(100_000) maxSubscriptionsPerClient?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(100_000_000) maxRetainedMessages?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(2 ** 40) maxRetainedBytes?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(65535) maxInflightPerClient?: number;
  @ApiPropertyOptional() @IsOptional() @IsInt() @Min(1) @Max(10_000_000) maxQueuedMessagesPerClient?: number;
}

export class CreateTenantDto {
  @ApiProperty({ example: 'acme', pattern: SLUG_PATTERN.source })
  @IsString()
  @Matches(SLUG_PATTERN, { message: 'must be 3-40 lower-case letters, digits or dashes, not starting or ending with a dash' })
  slug!: string;

  @ApiPropertyOptional({ example: 'ACME Corp' }) @IsOptional() @IsString() @Length(1, 200) name?: string;

  @ApiPropertyOptional({ type: TenantLimitsDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => TenantLimitsDto)
  limits?: TenantLimitsDto;

  @ApiPropertyOptional() @IsOptional() @IsBoolean() requireClientCertificates?: boolean;

  @ApiPropertyOptional({ enum: ['allow', 'deny'] }) @IsOptional() @IsIn(['allow', 'deny']) defaultAclPermission?:
    | 'allow'
    | 'deny';
}

export class UpdateTenantDto {
  @ApiPropertyOptional() @IsOptional() @IsString() @Length(1, 200) name?: string;

  @ApiPropertyOptional({ type: TenantLimitsDto })
  @IsOptional()
  @ValidateNested()
  @Type(() => TenantLimitsDto)
  limits?: TenantLimitsDto;

  @ApiPropertyOptional() @IsOptional() @IsBoolean() requireClientCertificates?: boolean;

  @ApiPropertyOptional({ enum: ['allow', 'deny'] }) @IsOptional() @IsIn(['allow', 'deny']) defaultAclPermission?:
    | 'allow'
    | 'deny';
}

export class SlugParam {
  @IsString() @Matches(SLUG_PATTERN, { message: 'is not a tenant slug' }) slug!: string;
}
