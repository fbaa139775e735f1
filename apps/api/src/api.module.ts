import { Module, type DynamicModule } from '@nestjs/common';
import { APP_FILTER, APP_INTERCEPTOR } from '@nestjs/core';
import { AuditInterceptor, AuditModule } from '#otter/audit';
import { ConfigModule, type OtterConfig } from '#otter/config';
import { DbModule } from '#otter/db';
import { OtterExceptionFilter } from '#otter/errors';
import { EventsModule } from '#otter/events';
import { LoggingModule } from '#otter/logging';
import { MetricsModule } from '#otter/metrics';
import { StorageModule } from '#otter/storage';
import { BodyRefusalInterceptor } from './common/body-refusal.interceptor.js';
import { AuditHttpModule } from './audit/audit-http.module.js';
import { DeltasHttpModule } from './deltas/deltas-http.module.js';
import { DevicesHttpModule } from './devices/devices-http.module.js';
import { EventsHttpModule } from './events/events-http.module.js';
import { DirectorHttpModule } from './director/director-http.module.js';
import { OpenApiController } from './api-contract/openapi.controller.js';
import { HealthController } from './health.controller.js';
import { OperationsModule } from './operations/operations.module.js';
import { NodesHttpModule } from './nodes/nodes-http.module.js';
import { ReleasesHttpModule } from './releases/releases-http.module.js';
import { RolloutsHttpModule } from './rollouts/rollouts-http.module.js';
import { TokensHttpModule } from './tokens/tokens-http.module.js';
import { TufHttpModule } from './tuf/tuf-http.module.js';

@Module({})
export class ApiModule {
  static forRoot(config: OtterConfig): DynamicModule {
    return {
      module: ApiModule,
      imports: [
        ConfigModule.forRoot(config),
        LoggingModule.forRoot(config, 'api'),
        // The api serves /metrics itself and computes the fleet gauges (docs/operations.md).
        MetricsModule.forRoot({ process: 'api', fleet: true, serve: false }),
        DbModule,
        EventsModule,
        StorageModule,
        TokensHttpModule,
        TufHttpModule,
        ReleasesHttpModule,
        DevicesHttpModule,
        DirectorHttpModule,
        DeltasHttpModule.forRoot(config),
        RolloutsHttpModule,
        OperationsModule,
        AuditModule,
        AuditHttpModule,
        EventsHttpModule,
        NodesHttpModule,
      ],
      controllers: [HealthController, OpenApiController],
      providers: [
        { provide: APP_FILTER, useClass: OtterExceptionFilter },
        // First: it must also see (and record as failed) a call that a later interceptor refuses.
        { provide: APP_INTERCEPTOR, useExisting: AuditInterceptor },
        { provide: APP_INTERCEPTOR, useClass: BodyRefusalInterceptor },
      ],
    };
  }
}
