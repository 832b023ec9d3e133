import { ApiProperty } from '@nestjs/swagger';
import { IsString, Length, Matches } from 'class-validator';
import { SLUG_PATTERN } from '../tenants/tenant.dto';

export const API_KEY_ID_PATTERN = /^[0-9a-z]{22}$/;

export class CreateApiKeyDto {
  @ApiProperty({ example: 'ci-deploy', minLength: 1, maxLength: 100 })
  @IsString()
  @Length(1, 100)
  @Matches(/^[^\u0000-\u001f\u007f]+$/, { message: 'must not contain control characters' })
  name!: string;
}

export class ApiKeyParams {
  @IsString() @Matches(SLUG_PATTERN, { message: 'is not a tenant slug' }) slug!: string;
  @IsString() @Matches(API_KEY_ID_PATTERN, { message: 'is not an API key id' }) id!: string;
}
