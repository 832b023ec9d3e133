import { IsOptional, IsString, Matches } from 'class-validator';
import { PageQuery } from '../common/pagination';
import { IsMqttFilter, IsRetainedTopic } from '../publish/topic.validators';
import { SLUG_PATTERN } from '../tenants/tenant.dto';

export class RetainedListQuery extends PageQuery {
  /** MQTT filter, device-side; default `#` (which, as in MQTT, does not match `$` topics) */
  @IsOptional() @IsString() @IsMqttFilter() filter?: string;
}

export class RetainedParams {
  @IsString() @Matches(SLUG_PATTERN, { message: 'is not a tenant slug' }) slug!: string;
  /** the topic, percent-encoded as one path segment (`a%2Fb`); Fastify decodes it once */
  @IsRetainedTopic() topic!: string;
}
