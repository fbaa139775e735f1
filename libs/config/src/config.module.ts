import { Global, Module, type DynamicModule } from '@nestjs/common';
import { loadConfig, type OtterConfig } from './otter-config.js';

export const OTTER_CONFIG = Symbol('OTTER_CONFIG');

/** Validates the environment once, at boot, and provides the result to every module. */
@Global()
@Module({})
export class ConfigModule {
  static forRoot(config: OtterConfig = loadConfig()): DynamicModule {
    return {
      module: ConfigModule,
      providers: [{ provide: OTTER_CONFIG, useValue: config }],
      exports: [OTTER_CONFIG],
    };
  }
}
