import { Module, RequestMethod, type DynamicModule } from '@nestjs/common';
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
          // Public TUF GETs are what every agent polls: per-request logging there would dominate the cost of
          // answering and drown the log. Errors on them still reach the exception filter's log.
          exclude: [{ method: RequestMethod.GET, path: 'tuf/*path' }],
        }),
      ],
      exports: [LoggerModule],
    };
  }
}
