import { readPcrValues } from './pcr-values.js';

export interface PcrPolicyInput {
  /** The PCR values a verified quote covers (hex SHA-256). */
  pcrValues: Record<number, string>;
  /** Values pinned for this device (e.g. at enrollment): must not change. */
  pinned: Record<number, string>;
  /** Values the fleet's reference measurements expect (e.g. for the release the device should run). */
  reference: Record<number, string>;
}

export interface PcrMismatch {
  pcr: number;
  expected: string;
  actual: string;
  source: 'pinned' | 'reference';
}

export interface PcrPolicyResult {
  pass: boolean;
  mismatches: PcrMismatch[];
  /** PCRs the policy names that the quote does not cover: each one fails the policy. */
  missing: number[];
}

/**
 * Compares quoted PCR values with the device's pinned values and the reference values. A PCR named by both is
 * checked against both. Values compare case-insensitively (reported lower-case). Malformed input of any of
 * the three is PCR_POLICY_INVALID.
 */
export function evaluatePcrPolicy(input: PcrPolicyInput): PcrPolicyResult {
  const actual = readPcrValues(input.pcrValues, 'PCR_POLICY_INVALID', 'pcrValues');
  const sources = [
    { source: 'pinned' as const, values: readPcrValues(input.pinned, 'PCR_POLICY_INVALID', 'pinned') },
    {
      source: 'reference' as const,
      values: readPcrValues(input.reference, 'PCR_POLICY_INVALID', 'reference'),
    },
  ];
  const mismatches: PcrMismatch[] = [];
  const missing = new Set<number>();
  for (const { source, values } of sources) {
    for (const [pcr, expected] of [...values].sort(([a], [b]) => a - b)) {
      const value = actual.get(pcr);
      if (!value) missing.add(pcr);
      else if (!value.equals(expected)) {
        mismatches.push({ pcr, expected: expected.toString('hex'), actual: value.toString('hex'), source });
      }
    }
  }
  const missingList = [...missing].sort((a, b) => a - b);
  return { pass: mismatches.length === 0 && missingList.length === 0, mismatches, missing: missingList };
}

/**
 * The PCRs of a release's reference measurements that prove the release booted: those the pinned
 * firmware/boot values do not already fix. A quote that matched only pinned PCRs says the node booted its
 * usual firmware, not which release; a release with none of these can never be proven (and cannot be rolled
 * out). Sorted, without duplicates.
 */
export function releaseProofPcrs(referencePcrs: Iterable<number>, pinnedPcrs: Iterable<number>): number[] {
  const pinned = new Set(pinnedPcrs);
  return [...new Set(referencePcrs)].filter((p) => !pinned.has(p)).sort((a, b) => a - b);
}
