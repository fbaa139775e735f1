import {
  Global,
  Inject,
  Injectable,
  Logger,
  Module,
  type DynamicModule,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { MetricsServer } from './metrics-server.js';
import { OtterMetrics, type OtterMetricsOptions } from './otter-metrics.js';

/** Serves the registry on OTTER_METRICS_PORT once the process is up (scheduler, delta-worker). */
@Injectable()
export class MetricsEndpoint implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('MetricsEndpoint');
  private server: MetricsServer | undefined;

  constructor(
    private readonly metrics: OtterMetrics,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  /** The bound port (OTTER_METRICS_PORT, or the one the system chose for 0 in tests), or undefined when off. */
  get port(): number | undefined {
    return this.server?.port;
  }

  async onApplicationBootstrap(): Promise<void> {
    const { port, host, token } = this.config.metrics;
    if (port === undefined) return;
    this.server = await MetricsServer.listen(this.metrics, { port, host, token });
    this.logger.log(`metrics on http://${host}:${this.server.port}/metrics`);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.server?.close();
  }
}

/**
 * One OtterMetrics per application (global: any lib may record into it). Libs inject it `@Optional()`, so
 * their modules still build in tests without it.
 */
@Global()
@Module({})
export class MetricsModule {
  static forRoot(options: OtterMetricsOptions & { serve: boolean }): DynamicModule {
    const { serve, ...metricsOptions } = options;
    return {
      module: MetricsModule,
      providers: [
        { provide: OtterMetrics, useFactory: () => new OtterMetrics(metricsOptions) },
        ...(serve ? [MetricsEndpoint] : []),
      ],
      exports: [OtterMetrics],
    };
  }
}
