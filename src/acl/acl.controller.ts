import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Principal } from '../common/auth';
import { PageQuery } from '../common/pagination';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantsService } from '../tenants/tenants.service';
import { AclRuleParams, CreateAclRuleDto, UpdateAclRuleDto } from './acl.dto';
import { aclRuleView, AclRuleView, AclService } from './acl.service';

@ApiTags('acls')
@ApiBearerAuth()
@Controller('api/v1/tenants/:slug/acls')
export class AclController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly acl: AclService,
  ) {}

  @Post()
  async create(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Body() dto: CreateAclRuleDto): Promise<AclRuleView> {
    return this.acl.create(await this.tenants.resolve(principal, p.slug), dto);
  }

  @Get()
  async list(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Query() page: PageQuery) {
    return this.acl.list(await this.tenants.resolve(principal, p.slug), page.limit, page.cursor);
  }

  @Get(':id')
  async get(@CurrentPrincipal() principal: Principal, @Param() p: AclRuleParams): Promise<AclRuleView> {
    return aclRuleView(await this.acl.get(await this.tenants.resolve(principal, p.slug), p.id));
  }

  @Patch(':id')
  async update(@CurrentPrincipal() principal: Principal, @Param() p: AclRuleParams, @Body() dto: UpdateAclRuleDto): Promise<AclRuleView> {
    return this.acl.update(await this.tenants.resolve(principal, p.slug), p.id, dto);
  }

  @Delete(':id')
  @HttpCode(204)
  async remove(@CurrentPrincipal() principal: Principal, @Param() p: AclRuleParams): Promise<void> {
    await this.acl.remove(await this.tenants.resolve(principal, p.slug), p.id);
  }
}
