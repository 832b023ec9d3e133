import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsISO8601, IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { PageQuery } from '../common/pagination';
import { DEVICE_NAME_PATTERN } from '../devices/device.dto';

export class AuditQueryDto extends PageQuery {
  @ApiPropertyOptional({ description: 'an event type (`device.create`), or a family (`device.*`)', example: 'connect.refused' })
  @IsOptional()
  @IsString()
  @MaxLength(100)
  type?: string;

  @ApiPropertyOptional({ description: 'events about this device (its REST changes and its connections)' })
  @IsOptional()
  @IsString()
  @Matches(DEVICE_NAME_PATTERN, { message: 'is not a device name' })
  device?: string;

  @ApiPropertyOptional({ description: 'ISO 8601: events at or after this time' })
  @IsOptional()
  @IsISO8601({ strict: true })
  since?: string;

  @ApiPropertyOptional({ description: 'ISO 8601: events before this time' })
  @IsOptional()
  @IsISO8601({ strict: true })
  until?: string;
}
