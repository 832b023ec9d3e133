import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiCreatedResponse, ApiOkResponse, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal, Principal } from '../common/auth';
import { PageQuery } from '../common/pagination';
import { DeviceParams } from '../devices/device.dto';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantsService } from '../tenants/tenants.service';
import { CertificateParams, CertificateView, IssueCertificateDto, IssuedCertificateView } from './certificate.dto';
import { CertificatesService } from './certificates.service';
import { PEM_CONTENT_TYPE, pemFile } from './pem';
import { TenantCaService } from './tenant-ca.service';

@ApiTags('certificates')
@ApiBearerAuth()
@Controller('api/v1/tenants/:slug')
export class CertificatesController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly cas: TenantCaService,
    private readonly certificates: CertificatesService,
  ) {}

  @Get('ca')
  @ApiProduces(PEM_CONTENT_TYPE)
  @ApiOkResponse({ description: "the tenant CA certificate (PEM): it signs the tenant's device certificates" })
  async ca(
    @CurrentPrincipal() principal: Principal,
    @Param() p: SlugParam,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<string> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    const pem = await this.cas.certificatePem(tenant);
    void reply.header('content-type', PEM_CONTENT_TYPE);
    return pemFile(pem);
  }

  @Post('devices/:name/certificates')
  @ApiCreatedResponse({ type: IssuedCertificateView })
  async issue(
    @CurrentPrincipal() principal: Principal,
    @Param() p: DeviceParams,
    @Body() dto: IssueCertificateDto,
  ): Promise<IssuedCertificateView> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return this.certificates.issue(tenant, p.name, dto ?? {});
  }

  @Get('devices/:name/certificates')
  async list(@CurrentPrincipal() principal: Principal, @Param() p: DeviceParams, @Query() page: PageQuery) {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return this.certificates.list(tenant, p.name, page.limit, page.cursor);
  }

  @Post('devices/:name/certificates/:id/revoke')
  @HttpCode(200)
  @ApiOkResponse({ type: CertificateView })
  async revoke(@CurrentPrincipal() principal: Principal, @Param() p: CertificateParams): Promise<CertificateView> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return this.certificates.revoke(tenant, p.name, p.id);
  }
}
