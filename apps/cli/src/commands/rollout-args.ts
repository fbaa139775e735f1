import { InvalidArgumentError } from 'commander';
import {
  LABEL_PATTERN,
  maintenanceWindowProblem,
  MAX_NODE_LABELS,
  WINDOW_TIME_PATTERN,
  type MaintenanceWindow,
  type WaveSpec,
} from '#otter/contracts';

// Parsers for `otter rollout create` and `otter node label` arguments. Each throws commander's
// InvalidArgumentError, so a typo is reported against the option that holds it before any request is made.

/** A wave as written: its soak may be left to `--soak`. */
export type WaveArg = Omit<WaveSpec, 'soakSeconds'> & { soakSeconds?: number };

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** `600`, `90s`, `10m`, `2h`, `1d` -> seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d{1,9})([smhd]?)$/.exec(text);
  if (!match)
    throw new InvalidArgumentError('expected seconds, or a number with s, m, h or d (e.g. 600, 10m, 2h)');
  return Number(match[1]) * UNIT_SECONDS[match[2] || 's']!;
}

/**
 * `10%` (a share of the target group), `5` (a number of nodes), either followed by `:SOAK` (a duration):
 * `100%:1h`.
 */
export function parseWave(text: string): WaveArg {
  const match = /^(?:(\d+(?:\.\d+)?)%|(\d+))(?::(.*))?$/.exec(text);
  if (!match) {
    throw new InvalidArgumentError(
      'expected PERCENT% or COUNT, optionally followed by :SOAK (e.g. 10%, 5, 100%:1h)',
    );
  }
  const [, percent, count, soak] = match;
  const soakSeconds = soak === undefined ? undefined : parseDuration(soak);
  if (percent !== undefined) {
    const value = Number(percent);
    if (value <= 0 || value > 100)
      throw new InvalidArgumentError('a wave percentage must be above 0% and at most 100%');
    return { percent: value, ...(soakSeconds !== undefined && { soakSeconds }) };
  }
  const value = Number(count);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new InvalidArgumentError('a wave must have at least 1 node');
  return { count: value, ...(soakSeconds !== undefined && { soakSeconds }) };
}

/** Waves with `--soak` (default 0) filled in where a wave does not name its own. */
export function completeWaves(waves: readonly WaveArg[], defaultSoakSeconds = 0): WaveSpec[] {
  return waves.map((w) => ({ ...w, soakSeconds: w.soakSeconds ?? defaultSoakSeconds }));
}

/** `0.9` or `90%` -> 0.9; a share of a wave, above 0 and at most 1. */
export function parseShare(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(%?)$/.exec(text);
  const value = match ? Number(match[1]) / (match[2] ? 100 : 1) : NaN;
  if (!(value > 0 && value <= 1)) {
    throw new InvalidArgumentError('expected a share above 0 and at most 1, as 0.9 or 90%');
  }
  return value;
}

export function parsePositiveInteger(text: string): number {
  const value = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(value >= 1)) throw new InvalidArgumentError('expected a whole number of at least 1');
  return value;
}

/** `HH:MM-HH:MM` in UTC; the window may wrap past midnight (22:00-04:00). */
export function parseWindow(text: string): MaintenanceWindow {
  const match = /^(\d\d:\d\d)-(\d\d:\d\d)$/.exec(text);
  const window = match && { start: match[1]!, end: match[2]! };
  if (!window || !WINDOW_TIME_PATTERN.test(window.start) || !WINDOW_TIME_PATTERN.test(window.end))
    throw new InvalidArgumentError('expected a UTC window as HH:MM-HH:MM, e.g. 22:00-04:00');
  // The API's rule, so the CLI refuses exactly what the server would.
  const problem = maintenanceWindowProblem(window);
  if (problem) throw new InvalidArgumentError(problem);
  return window;
}

const LABEL_RULE = 'keys and values start with a letter or digit, then letters, digits, . _ / -, 63 at most';

/** `key=value`, both checked against the server's label rule. */
export function parseLabel(text: string): [string, string] {
  const at = text.indexOf('=');
  if (at < 0) throw new InvalidArgumentError('expected key=value');
  const key = text.slice(0, at);
  const value = text.slice(at + 1);
  if (!LABEL_PATTERN.test(key))
    throw new InvalidArgumentError(`bad label key ${JSON.stringify(key)}: ${LABEL_RULE}`);
  if (!LABEL_PATTERN.test(value)) {
    throw new InvalidArgumentError(`bad label value ${JSON.stringify(value)}: ${LABEL_RULE}`);
  }
  return [key, value];
}

/** Pairs to a label set: a key given twice is a mistake, not a last-one-wins. */
export function labelSet(pairs: ReadonlyArray<readonly [string, string]>): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, value] of pairs) {
    if (Object.hasOwn(labels, key)) throw new InvalidArgumentError(`label ${key} is given twice`);
    labels[key] = value;
  }
  if (pairs.length > MAX_NODE_LABELS) {
    throw new InvalidArgumentError(`at most ${MAX_NODE_LABELS} labels (got ${pairs.length})`);
  }
  return labels;
}

/** For a repeatable option: commander passes each value and what was collected so far. */
export function collect<T>(parse: (text: string) => T): (text: string, previous: T[] | undefined) => T[] {
  return (text, previous) => [...(previous ?? []), parse(text)];
}
