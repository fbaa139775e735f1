/** What the scheduler does with a node of the current wave, from its latest attestation verdict. */
export type AdmissionDecision =
  { kind: 'admit' } | { kind: 'quarantine'; reason: string } | { kind: 'ask-to-attest'; reason: string };

/**
 * A node is admitted only on a passing verdict younger than the rollout's maximum age. A fresh failing
 * verdict quarantines it (it cannot prove it booted what we expect); a missing or stale one asks it to attest.
 */
export function decideAdmission(
  verdict: { passed: boolean; reason: string; createdAt: string } | null,
  maxAgeSeconds: number,
  now: Date,
): AdmissionDecision {
  if (!verdict) return { kind: 'ask-to-attest', reason: 'no attestation yet' };
  const ageSeconds = Math.floor((now.getTime() - Date.parse(verdict.createdAt)) / 1000);
  if (ageSeconds > maxAgeSeconds) {
    return {
      kind: 'ask-to-attest',
      reason: `latest attestation is ${ageSeconds} s old (max ${maxAgeSeconds} s)`,
    };
  }
  if (!verdict.passed) return { kind: 'quarantine', reason: `attestation failed: ${verdict.reason}` };
  return { kind: 'admit' };
}
