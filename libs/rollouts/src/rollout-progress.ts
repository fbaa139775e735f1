import type { RolloutNodeState, WaveProgressDto } from '#otter/contracts';
import { FAILED, IN_PROGRESS } from './rollout-states.js';
import type { WaveCounts } from './rollout.repository.js';

/** One wave's numbers; `effective` leaves out nodes that are not the update's to win or lose. */
export interface WaveSummary extends WaveProgressDto {
  effective: number;
}

export function summarizeWave(counts: WaveCounts, wave: number): WaveSummary {
  const byState = counts.get(wave) ?? new Map<RolloutNodeState, number>();
  const n = (states: readonly RolloutNodeState[]): number =>
    states.reduce((sum, s) => sum + (byState.get(s) ?? 0), 0);
  const size = [...byState.values()].reduce((a, b) => a + b, 0);
  const quarantined = n(['quarantined']);
  const excluded = n(['excluded', 'cancelled']);
  return {
    wave,
    size,
    pending: n(['pending', 'waiting-attestation']),
    inProgress: n(IN_PROGRESS),
    succeeded: n(['succeeded']),
    failed: n(FAILED),
    quarantined,
    excluded,
    effective: size - quarantined - excluded,
  };
}

export function inProgressTotal(counts: WaveCounts): number {
  let total = 0;
  for (const wave of counts.keys()) total += summarizeWave(counts, wave).inProgress;
  return total;
}

export function percent(share: number): string {
  return `${Math.round(share * 1000) / 10}%`;
}
