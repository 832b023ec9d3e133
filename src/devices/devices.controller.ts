import { Body, Controller, Delete, Get, HttpCode, Param, Patch, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal, Principal } from '../common/auth';
import { PageQuery } from '../common/pagination';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantsService } from '../tenants/tenants.service';
import { CreateDeviceDto, DeviceParams, SetPasswordDto, UpdateDeviceDto } from './device.dto';
import { deviceView, DevicesService, DeviceView } from './devices.service';

@ApiTags('devices')
@ApiBearerAuth()
@Controller('api/v1/tenants/:slug/devices')
export class DevicesController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly devices: DevicesService,
  ) {}

  @Post()
  async create(
    @CurrentPrincipal() principal: Principal,
    @Param() p: SlugParam,
    @Body() dto: CreateDeviceDto,
  ): Promise<DeviceView & { password?: string }> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    const { device, generatedPassword } = await this.devices.create(tenant, dto);
    return { ...deviceView(device), ...(generatedPassword ? { password: generatedPassword } : {}) };
  }

  @Get()
  async list(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Query() page: PageQuery) {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return this.devices.list(tenant, page.limit, page.cursor);
  }

  @Get(':name')
  async get(@CurrentPrincipal() principal: Principal, @Param() p: DeviceParams): Promise<DeviceView> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return deviceView(await this.devices.get(tenant, p.name));
  }

  @Patch(':name')
  async update(@CurrentPrincipal() principal: Principal, @Param() p: DeviceParams, @Body() dto: UpdateDeviceDto): Promise<DeviceView> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    return deviceView(await this.devices.update(tenant, p.name, dto));
  }

  @Post(':name/password')
  @HttpCode(200)
  async setPassword(
    @CurrentPrincipal() principal: Principal,
    @Param() p: DeviceParams,
    // the class itself, not `SetPasswordDto | undefined`: a union is emitted as Object and the
    // ValidationPipe would skip the body altogether (an absent body is validated as `{}`)
    @Body() dto: SetPasswordDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<{ password: string } | undefined> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    const { generatedPassword } = await this.devices.setPassword(tenant, p.name, dto?.password);
    if (generatedPassword) return { password: generatedPassword };
    void reply.status(204);
    return undefined;
  }

  @Delete(':name')
  @HttpCode(204)
  async remove(@CurrentPrincipal() principal: Principal, @Param() p: DeviceParams): Promise<void> {
    const tenant = await this.tenants.resolve(principal, p.slug);
    await this.devices.remove(tenant, p.name);
  }
}
