import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Principal } from '../common/auth';
import { PageQuery } from '../common/pagination';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantOperatorGuard } from '../tenants/tenant-operator.guard';
import { TenantsService } from '../tenants/tenants.service';
import { ApiKeyParams, CreateApiKeyDto } from './api-key.dto';
import { ApiKeysService } from './api-keys.service';

/** Operator only (a tenant key: 404 for another tenant, 403 for its own; see TenantOperatorGuard). */
@ApiTags('api-keys')
@ApiBearerAuth()
@UseGuards(TenantOperatorGuard)
@Controller('api/v1/tenants/:slug/api-keys')
export class ApiKeysController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly keys: ApiKeysService,
  ) {}

  @Post()
  async create(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Body() dto: CreateApiKeyDto) {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return this.keys.create(tenant, dto.name);
  }

  @Get()
  async list(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Query() page: PageQuery) {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return this.keys.list(tenant, page.limit, page.cursor);
  }

  @Delete(':id')
  @HttpCode(204)
  async remove(@CurrentPrincipal() principal: Principal, @Param() p: ApiKeyParams): Promise<void> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    await this.keys.remove(tenant, p.id);
  }
}
