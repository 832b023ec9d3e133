import { Controller, Delete, Get, HttpCode, Param, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Principal } from '../common/auth';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantsService } from '../tenants/tenants.service';
import { SessionListQuery, SessionParams } from './session.dto';
import { SessionsService } from './sessions.service';

/** Live MQTT sessions of a tenant: list, detail with subscriptions, kick. */
@ApiTags('sessions')
@ApiBearerAuth()
@Controller('api/v1/tenants/:slug/sessions')
export class SessionsController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly sessions: SessionsService,
  ) {}

  @Get()
  async list(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Query() q: SessionListQuery) {
    return this.sessions.list(await this.tenants.resolve(principal, p.slug), q);
  }

  @Get(':clientId')
  async get(@CurrentPrincipal() principal: Principal, @Param() p: SessionParams) {
    return this.sessions.get(await this.tenants.resolve(principal, p.slug), p.clientId);
  }

  @Delete(':clientId')
  @HttpCode(204)
  async kick(@CurrentPrincipal() principal: Principal, @Param() p: SessionParams): Promise<void> {
    await this.sessions.kick(await this.tenants.resolve(principal, p.slug), p.clientId);
  }
}
