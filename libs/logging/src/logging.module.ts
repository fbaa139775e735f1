import { Module, type DynamicModule } from '@nestjs/common';
import { LoggerModule } from 'nestjs-pino';
import type { OtterConfig } from '#otter/config';

/** Structured JSON logs (pino) for every process; request logs carry method, url, status and time. */
@Module({})
export class LoggingModule {
  static forRoot(config: OtterConfig, service: string): DynamicModule {
    return {
      module: LoggingModule,
      imports: [
        LoggerModule.forRoot({
          pinoHttp: {
            level: config.logLevel,
            base: { service },
            autoLogging: { ignore: (req) => req.url === '/health' },
            redact: ['req.headers.authorization', 'req.headers.cookie'],
          },
        }),
      ],
      exports: [LoggerModule],
    };
  }
}
