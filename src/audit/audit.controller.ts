import { Controller, Get, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Principal } from '../common/auth';
import type { Page } from '../common/pagination';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantsService } from '../tenants/tenants.service';
import { AuditQueryDto } from './audit.dto';
import { AuditEventView, AuditService } from './audit.service';

@ApiTags('events')
@ApiBearerAuth()
@Controller('api/v1/tenants/:slug/events')
export class AuditController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly audit: AuditService,
  ) {}

  /** The tenant's audit trail, newest first. */
  @Get()
  async list(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Query() q: AuditQueryDto): Promise<Page<AuditEventView>> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return this.audit.list(tenant.id, q);
  }
}
