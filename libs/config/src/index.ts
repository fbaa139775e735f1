export { ConfigModule, OTTER_CONFIG } from './config.module.js';
export { loadConfig, ConfigError } from './otter-config.js';
export type {
  RolloutConfig,
  OtterConfig,
  S3Config,
  DatabaseConfig,
  TufConfig,
  DeviceConfig,
  DeltaConfig,
  HttpConfig,
  RateLimit,
  RateLimitConfig,
  RetentionConfig,
  MetricsConfig,
} from './otter-config.js';
