import { DynamicModule, Global, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { AclController } from './acl/acl.controller';
import { ApiKeysController } from './api-keys/api-keys.controller';
import { ApiKeysService } from './api-keys/api-keys.service';
import { AclService } from './acl/acl.service';
import { AuditController } from './audit/audit.controller';
import { AuditModule } from './audit/audit.module';
import { BrokerService } from './broker/broker.service';
import { ChangeBus } from './broker/identity/change-bus';
import { ClientCertificateAuth } from './broker/identity/client-certificate-auth';
import { IdentityService } from './broker/identity/identity.service';
import { TENANT_SOURCE } from './broker/identity/snapshot';
import { SERVER_TLS } from './broker/server-tls';
import { CertificatesController } from './certificates/certificates.controller';
import { CertificatesService } from './certificates/certificates.service';
import { MasterKeyService } from './certificates/master-key.service';
import { ServerCaController } from './certificates/server-ca.controller';
import { ServerTlsService } from './certificates/server-tls.service';
import { TenantCaService } from './certificates/tenant-ca.service';
import { ClusterSessionSource } from './cluster/cluster-session-source';
import { ClusterWriteGuard } from './cluster/cluster-write.guard';
import { ClusterService } from './cluster/cluster.service';
import { AuthGuard } from './common/auth';
import { APP_CONFIG, AppConfig } from './config/config';
import { PrismaService } from './database/prisma.service';
import { DevicesController } from './devices/devices.controller';
import { DevicesService } from './devices/devices.service';
import { HealthController } from './health/health.controller';
import { MetricsModule } from './metrics/metrics.module';
import { PublishController } from './publish/publish.controller';
import { PublishService } from './publish/publish.service';
import { RetainedController } from './retained/retained.controller';
import { RetainedService } from './retained/retained.service';
import { LocalSessionSource } from './sessions/local-session-source';
import { SESSION_SOURCE } from './sessions/session-source';
import { SessionsController } from './sessions/sessions.controller';
import { SessionsService } from './sessions/sessions.service';
import { PrismaTenantSource } from './tenants/tenant-snapshot.source';
import { TenantOperatorGuard } from './tenants/tenant-operator.guard';
import { TenantsController } from './tenants/tenants.controller';
import { TenantsService } from './tenants/tenants.service';

@Global()
@Module({})
class CoreModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: CoreModule,
      providers: [{ provide: APP_CONFIG, useValue: config }, PrismaService],
      exports: [APP_CONFIG, PrismaService],
    };
  }
}

@Global()
@Module({
  providers: [
    { provide: TENANT_SOURCE, useClass: PrismaTenantSource },
    IdentityService,
    ChangeBus,
    BrokerService,
    ClientCertificateAuth,
    MasterKeyService,
    ServerTlsService,
    { provide: SERVER_TLS, useExisting: ServerTlsService },
    // Redis persistence, emitter and node bus when REDIS_URL is set; nothing otherwise
    ClusterService,
  ],
  exports: [IdentityService, ChangeBus, BrokerService, ClientCertificateAuth, MasterKeyService, ServerTlsService, ClusterService],
})
class BrokerModule {}

@Module({
  controllers: [
    TenantsController,
    DevicesController,
    AclController,
    HealthController,
    ApiKeysController,
    SessionsController,
    PublishController,
    RetainedController,
    CertificatesController,
    ServerCaController,
    AuditController,
  ],
  providers: [
    TenantsService,
    DevicesService,
    AclService,
    { provide: APP_GUARD, useClass: AuthGuard },
    // after AuthGuard: changes answer 503 while the other nodes cannot be told (Redis away)
    { provide: APP_GUARD, useClass: ClusterWriteGuard },
    TenantOperatorGuard,
    ApiKeysService,
    // one node's sessions; a cluster replaces SESSION_SOURCE with one that asks every node
    LocalSessionSource,
    {
      provide: SESSION_SOURCE,
      useFactory: (local: LocalSessionSource, cluster: ClusterService) =>
        cluster.enabled ? new ClusterSessionSource(local, cluster) : local,
      inject: [LocalSessionSource, ClusterService],
    },
    SessionsService,
    PublishService,
    RetainedService,
    TenantCaService,
    CertificatesService,
  ],
  exports: [TenantsService, DevicesService, AclService],
})
class ControlPlaneModule {}

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        CoreModule.forRoot(config),
        BrokerModule,
        AuditModule,
        MetricsModule,
        ControlPlaneModule,
      ],
    };
  }
}
