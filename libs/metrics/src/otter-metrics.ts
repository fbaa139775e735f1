import { Logger } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { FamilyDefinition, HistogramDefinition } from './metric-families.js';
import { PROCESS_METRICS_PREFIX } from './metric-families.js';

export type OtterProcess = 'api' | 'scheduler' | 'delta-worker';

export interface OtterMetricsOptions {
  process: OtterProcess;
  /**
   * Computes the fleet gauges (nodes, rollouts, delta builds, TUF expiry) from the database at scrape time.
   * Only the api does: every replica answers the same, and the workers need not carry the queries.
   */
  fleet: boolean;
}

interface Collector<L extends string> {
  collect: GaugeCollector<L>;
  deadlineMs: number;
}

/**
 * Prometheus' default scrape timeout is 10 s: a collector gets less, so a slow one costs its own family and
 * not the whole scrape. Fleet aggregates at 100,000 nodes take seconds on a loaded machine (docs/operations.md).
 */
const DEFAULT_COLLECT_DEADLINE_MS = 8_000;

/** A gauge's collect callback: sets the gauge's values from a fresh aggregate. */
export type GaugeCollector<L extends string> = (gauge: Gauge<L>) => Promise<void>;

/**
 * One process's metrics registry (never prom-client's global one, so in-process tests that run several apps
 * keep theirs apart). Families are created from their definitions in METRICS; asking twice for one family
 * returns the same metric.
 */
export class OtterMetrics {
  readonly registry = new Registry();
  private readonly logger = new Logger('OtterMetrics');
  private readonly collectors = new Map<string, Array<Collector<string>>>();
  readonly process: OtterProcess;
  readonly fleet: boolean;

  constructor(options: OtterMetricsOptions) {
    this.process = options.process;
    this.fleet = options.fleet;
    collectDefaultMetrics({ register: this.registry, prefix: PROCESS_METRICS_PREFIX });
  }

  histogram<L extends string>(definition: HistogramDefinition<L>): Histogram<L> {
    return this.existing<Histogram<L>>(definition) ?? new Histogram<L>(this.config(definition, definition));
  }

  counter<L extends string>(definition: FamilyDefinition<L>): Counter<L> {
    return this.existing<Counter<L>>(definition) ?? new Counter<L>(this.config(definition, {}));
  }

  /**
   * Adds a collector to a gauge computed at scrape time (several libs may feed one family, e.g. TUF expiry of
   * the image repository and of the director). The gauge is reset first, so label sets that disappeared (a
   * rollout that finished, a version nobody runs any more) stop being exported. A collector that fails or
   * outlives deadlineMs (Redis or the database gone) contributes nothing and is logged: the rest of the
   * scrape, and the process metrics that tell an operator what is wrong, still answer.
   */
  gauge<L extends string>(
    definition: FamilyDefinition<L>,
    collect: GaugeCollector<L>,
    deadlineMs = DEFAULT_COLLECT_DEADLINE_MS,
  ): Gauge<L> {
    let collectors = this.collectors.get(definition.name) as Array<Collector<L>> | undefined;
    if (!collectors) {
      collectors = [];
      this.collectors.set(definition.name, collectors as unknown as Array<Collector<string>>);
      const all = collectors;
      const logger = this.logger;
      new Gauge<L>({
        ...this.config(definition, {}),
        async collect() {
          this.reset();
          await Promise.all(
            all.map(async (c) => {
              try {
                await withDeadline(c.collect(this), c.deadlineMs);
              } catch (error) {
                logger.warn(`${definition.name} not collected: ${(error as Error).message}`);
              }
            }),
          );
        },
      });
    }
    collectors.push({ collect, deadlineMs });
    return this.existing<Gauge<L>>(definition)!;
  }

  /** The Prometheus text exposition of every family. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  /** Names of every registered family, as the exposition shows them (histograms without their suffixes). */
  familyNames(): string[] {
    return this.registry.getMetricsAsArray().map((m) => m.name);
  }

  private existing<M>(definition: FamilyDefinition): M | undefined {
    return this.registry.getSingleMetric(definition.name) as M | undefined;
  }

  private config<L extends string, X extends object>(definition: FamilyDefinition<L>, extra: X) {
    const { buckets } = extra as { buckets?: readonly number[] };
    return {
      name: definition.name,
      help: definition.help,
      labelNames: definition.labelNames,
      registers: [this.registry],
      ...(buckets ? { buckets: [...buckets] } : {}),
    };
  }
}

/**
 * Rejects when `work` has not settled `ms` after it started, judged only once the I/O that arrived meanwhile
 * has been read: SQLite's queries block the event loop, and an answer from Redis that came in during one must
 * not lose to a timer that fired behind it.
 */
function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => setImmediate(() => reject(new Error(`no answer within ${ms} ms`))), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
