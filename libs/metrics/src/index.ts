export { METRICS } from './metric-families.js';
export type { FamilyDefinition, HistogramDefinition } from './metric-families.js';
export { OtterMetrics } from './otter-metrics.js';
export type { GaugeCollector, OtterMetricsOptions, OtterProcess } from './otter-metrics.js';
export { MetricsModule, MetricsEndpoint } from './metrics.module.js';
export { scrapeAllowed } from './scrape-authorization.js';
