import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import type { OtterMetrics } from './otter-metrics.js';

export interface ExposedSample {
  /** The series name as exposed: a histogram's are `<family>_bucket`, `_sum` and `_count`. */
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * A Prometheus text exposition read with parse-prometheus-text-format (which throws on a malformed line), as
 * families and as flat samples. The parser folds a labelled histogram's series into one, so histograms are
 * read a second time with their TYPE lines dropped: each `_bucket`, `_sum` and `_count` line then keeps its
 * own labels and value.
 */
export class Exposition {
  private constructor(
    readonly families: ReadonlyMap<string, string>,
    readonly samples: readonly ExposedSample[],
  ) {}

  static parse(text: string): Exposition {
    const families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f.type]));
    const untyped = text.replace(/^# TYPE \S+ histogram$/gm, '');
    const samples = parsePrometheusTextFormat(untyped).flatMap((family) =>
      family.metrics
        .filter((m) => m.value !== undefined)
        .map((m) => ({ name: family.name, labels: m.labels ?? {}, value: Number(m.value) })),
    );
    return new Exposition(families, samples);
  }

  /** Samples of `name` whose labels include every one of `labels`. */
  find(name: string, labels: Record<string, string> = {}): ExposedSample[] {
    return this.samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    );
  }

  /** The value of the one sample of `name` with exactly these labels, or undefined. */
  value(name: string, labels: Record<string, string> = {}): number | undefined {
    const keys = Object.keys(labels);
    return this.find(name, labels).find((s) => Object.keys(s.labels).length === keys.length)?.value;
  }
}

/**
 * Every series name a process's registry exports, as Prometheus stores them: a histogram's `_bucket`, `_sum`
 * and `_count`, a summary's `_sum` and `_count` (its quantiles keep the family's name). Runs the collectors.
 */
export async function exportedSeriesNames(metrics: OtterMetrics): Promise<Set<string>> {
  const names = new Set<string>();
  for (const family of await metrics.registry.getMetricsAsJSON()) {
    const type = String(family.type);
    names.add(family.name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(family.name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(family.name + s);
  }
  return names;
}
