import { Body, Controller, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { CurrentPrincipal, Principal } from '../common/auth';
import { SlugParam } from '../tenants/tenant.dto';
import { TenantsService } from '../tenants/tenants.service';
import { PublishDto } from './publish.dto';
import { PublishService } from './publish.service';

@ApiTags('publish')
@ApiBearerAuth()
@Controller('api/v1/tenants/:slug/publish')
export class PublishController {
  constructor(
    private readonly tenants: TenantsService,
    private readonly publisher: PublishService,
  ) {}

  /** 202: handed to the broker; delivery to subscribers follows as for any publish. */
  @Post()
  @HttpCode(202)
  async publish(@CurrentPrincipal() principal: Principal, @Param() p: SlugParam, @Body() dto: PublishDto): Promise<void> {
    await this.publisher.publish(await this.tenants.resolve(principal, p.slug), dto);
  }
}
