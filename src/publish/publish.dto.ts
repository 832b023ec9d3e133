import { IsBoolean, IsIn, IsOptional, IsString } from 'class-validator';
import { IsPublishTopic } from './topic.validators';

export const PAYLOAD_ENCODINGS = ['utf8', 'base64'] as const;
export type PayloadEncoding = (typeof PAYLOAD_ENCODINGS)[number];

export class PublishDto {
  /** device-side topic name: no wildcards, not $SYS */
  @IsPublishTopic() topic!: string;
  @IsString() payload!: string;
  @IsOptional() @IsIn(PAYLOAD_ENCODINGS) encoding?: PayloadEncoding;
  @IsOptional() @IsIn([0, 1, 2]) qos?: 0 | 1 | 2;
  @IsOptional() @IsBoolean() retain?: boolean;
}
