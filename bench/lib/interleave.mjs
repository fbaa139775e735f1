// Before/after comparisons that stay meaningful on a shared machine: the builds run in many short rounds,
// interleaved (A B C A B C ...), and each ratio is taken within one round, between runs seconds apart, so a
// change in the machine's load skews both sides of a ratio alike. The report is the median ratio over the
// rounds with its spread, so the noise is visible next to the number.
import { loadavg } from 'node:os';

/**
 * Runs `rounds` rounds; in each, `measure(arm, round)` once per arm, in an order that rotates by one each
 * round (so no arm always runs first, right after the others' load). Returns the results per arm, in round
 * order, and the load averages seen at each round's start.
 * @template A, R
 * @param {A[]} arms
 * @param {number} rounds
 * @param {(arm: A, round: number) => Promise<R>} measure
 * @returns {Promise<{ results: Map<A, R[]>, loads: number[] }>}
 */
export async function interleaved(arms, rounds, measure) {
  const results = new Map(arms.map((arm) => [arm, []]));
  const loads = [];
  for (let round = 0; round < rounds; round++) {
    loads.push(loadavg()[0]);
    for (let i = 0; i < arms.length; i++) {
      const arm = arms[(round + i) % arms.length];
      results.get(arm).push(await measure(arm, round));
    }
  }
  return { results, loads };
}

/**
 * Median, quartiles and extremes of `values` (linear interpolation between ranks).
 * @param {number[]} values
 */
export function spread(values) {
  const sorted = [...values].filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const at = (q) => {
    if (sorted.length === 0) return NaN;
    const rank = q * (sorted.length - 1);
    const low = Math.floor(rank);
    const high = Math.ceil(rank);
    return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
  };
  return { n: sorted.length, min: at(0), q1: at(0.25), median: at(0.5), q3: at(0.75), max: at(1) };
}

/**
 * Per-round ratios `after[i] / before[i]` of one quantity (each pair measured in the same round).
 * @param {number[]} after
 * @param {number[]} before
 */
export function roundRatios(after, before) {
  return after.map((a, i) => a / before[i]);
}

/** `1.05 (IQR 1.01-1.09, min-max 0.97-1.15, 12 rounds)`. */
export function describeSpread(s, digits = 2) {
  const f = (v) => v.toFixed(digits);
  return `${f(s.median)} (IQR ${f(s.q1)}-${f(s.q3)}, min-max ${f(s.min)}-${f(s.max)}, ${s.n} rounds)`;
}
