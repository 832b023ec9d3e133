import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsInt, IsOptional, IsString, Length, Matches, Max, MaxLength, Min } from 'class-validator';
import { DEVICE_NAME_PATTERN } from '../devices/device.dto';
import { SLUG_PATTERN } from '../tenants/tenant.dto';

export const MAX_CERTIFICATE_VALIDITY_DAYS = 825;
export const DEFAULT_CERTIFICATE_VALIDITY_DAYS = 365;

export class IssueCertificateDto {
  @ApiPropertyOptional({
    description:
      'PEM PKCS#10 request made on the device (its private key never leaves it); omit to have a key pair generated and its private key returned once',
    example: '-----BEGIN CERTIFICATE REQUEST-----\n...\n-----END CERTIFICATE REQUEST-----\n',
    maxLength: 65536,
  })
  @IsOptional()
  @IsString()
  @MaxLength(65536)
  csr?: string;

  @ApiPropertyOptional({ minimum: 1, maximum: MAX_CERTIFICATE_VALIDITY_DAYS, default: DEFAULT_CERTIFICATE_VALIDITY_DAYS })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(MAX_CERTIFICATE_VALIDITY_DAYS)
  validityDays?: number;
}

export class CertificateParams {
  @IsString() @Matches(SLUG_PATTERN, { message: 'is not a tenant slug' }) slug!: string;
  @IsString() @Matches(DEVICE_NAME_PATTERN, { message: 'is not a device name' }) name!: string;
  @IsString() @Length(1, 64) id!: string;
}

export class CertificateView {
  @ApiProperty() id!: string;
  @ApiProperty({ description: 'the device it was issued to (its CN)' }) device!: string;
  @ApiProperty({ description: 'lower-case hex, no leading zeros', example: '5f1c0e7a9b2d4c6e8f0a1b2c3d4e5f60' }) serialNumber!: string;
  @ApiProperty({ description: 'lower-case hex SHA-256 of the DER certificate' }) fingerprintSha256!: string;
  @ApiProperty({ format: 'date-time' }) notBefore!: string;
  @ApiProperty({ format: 'date-time' }) notAfter!: string;
  @ApiProperty({ enum: ['active', 'revoked'] }) status!: 'active' | 'revoked';
  @ApiProperty({ type: String, format: 'date-time', nullable: true }) revokedAt!: string | null;
  @ApiProperty({ format: 'date-time' }) createdAt!: string;
  @ApiProperty() certificatePem!: string;
}

export class IssuedCertificateView extends CertificateView {
  @ApiPropertyOptional({ description: 'PKCS#8 PEM, only when the service generated the key pair; shown once' }) privateKeyPem?: string;
  @ApiProperty({ description: 'the tenant CA certificate (PEM)' }) caPem!: string;
}
