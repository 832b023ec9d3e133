import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, UseGuards } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, OperatorOnly, Principal } from '../common/auth';
import { PageQuery } from '../common/pagination';
import { CreateTenantDto, SlugParam, UpdateTenantDto } from './tenant.dto';
import { TenantOperatorGuard } from './tenant-operator.guard';
import { tenantView, TenantsService, TenantView } from './tenants.service';

@ApiTags('tenants')
@ApiBearerAuth()
@Controller('api/v1/tenants')
export class TenantsController {
  constructor(private readonly tenants: TenantsService) {}

  @Post()
  @OperatorOnly()
  async create(@Body() dto: CreateTenantDto): Promise<TenantView> {
    return tenantView(await this.tenants.create(dto));
  }

  @Get()
  list(@CurrentPrincipal() principal: Principal, @Query() page: PageQuery) {
    return this.tenants.list(principal, page.limit, page.cursor);
  }

  @Get(':slug')
  async get(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam): Promise<TenantView> {
    return tenantView(await this.tenants.resolve(principal, p.slug));
  }

  @Patch(':slug')
  async update(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Body() dto: UpdateTenantDto): Promise<TenantView> {
    return tenantView(await this.tenants.update(principal, p.slug, dto));
  }

  @Delete(':slug')
  @UseGuards(TenantOperatorGuard)
  @HttpCode(204)
  async remove(@Param() p: SlugParam): Promise<void> {
    await this.tenants.remove(p.slug);
  }
}
