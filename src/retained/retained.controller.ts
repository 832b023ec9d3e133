import { Controller, Delete, Get, HttpCode, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Principal } from '../common/auth';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantsService } from '../tenants/tenants.service';
import { RetainedListQuery, RetainedParams } from './retained.dto';
import { RetainedService } from './retained.service';

@ApiTags('retained')
@ApiBearerAuth()
@Controller('api/v1/tenants/:slug/retained')
export class RetainedController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly retained: RetainedService,
  ) {}

  @Get()
  async list(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Query() q: RetainedListQuery) {
    return this.retained.list(await this.tenants.resolve(principal, p.slug), q);
  }

  @Get(':topic')
  async get(@CurrentPrincipal() principal: Principal, @Param() p: RetainedParams) {
    return this.retained.get(await this.tenants.resolve(principal, p.slug), p.topic);
  }

  @Delete(':topic')
  @HttpCode(204)
  async remove(@CurrentPrincipal() principal: Principal, @Param() p: RetainedParams): Promise<void> {
    await this.retained.remove(await this.tenants.resolve(principal, p.slug), p.topic);
  }
}
