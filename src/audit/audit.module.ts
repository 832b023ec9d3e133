import { Global, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { AuditInterceptor } from './audit.interceptor';
import { AuditService } from './audit.service';
import { ConnectionAudit } from './connection-audit';

/** The audit trail; AuditService is global so any capability can `record()` into it. */
@Global()
@Module({
  providers: [AuditService, ConnectionAudit, { provide: APP_INTERCEPTOR, useClass: AuditInterceptor }],
  exports: [AuditService],
})
export class AuditModule {}
