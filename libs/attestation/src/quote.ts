import { createHash, timingSafeEqual } from 'node:crypto';
import { AttestationError } from './attestation-error.js';
import { readPcrList, readPcrValues } from './pcr-values.js';
import {
  attestationKeyObject,
  attestHeader,
  rewrap,
  verifyAttestSignature,
  type AttestationKeyInput,
} from './signed-attest.js';
import {
  asBytes,
  hex16,
  MAX_DIGEST_BYTES,
  parseTpmsAttest,
  type PcrBankSelection,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_QUOTE,
  type TpmsAttest,
} from './tpm-wire.js';

/** The TPM counters of an earlier accepted quote from the same TPM. */
export interface TpmCounters {
  resetCount: number;
  restartCount: number;
  /** u64 milliseconds: a bigint, a safe integer, or a decimal string (as PostgreSQL returns a bigint). */
  clock: bigint | number | string;
}

export interface VerifyQuoteInput {
  akPublic: AttestationKeyInput;
  /** The TPMS_ATTEST bytes the TPM signed (`tpm2_quote -m`). */
  attest: Uint8Array;
  /** The TPMT_SIGNATURE (`tpm2_quote -s`, tss format). */
  signature: Uint8Array;
  /** The nonce this verifier issued for this quote (1 to 64 bytes; use at least 16 random bytes). */
  expectedNonce: Uint8Array;
  /** The PCR values the device reports, sha256 bank, hex. Must be exactly the PCRs the quote selected. */
  pcrValues: Record<number, string>;
  /** PCRs the quote must cover. */
  requiredPcrs?: number[];
  /** Counters of the last quote accepted from this TPM, to refuse a TPM whose state was rolled back. */
  previous?: TpmCounters;
}

export interface VerifiedQuote {
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  /** The quoted PCRs in the order the TPM hashed them (the signed selection's order). */
  pcrs: number[];
}

/**
 * Verifies a TPM2_Quote made with an ECDSA-SHA256 attestation key against the nonce this verifier issued and
 * the PCR values the device reports. Checks, in order: magic, type, structure, signature, nonce (constant
 * time), selection (sha256 bank only, no PCR twice, exactly the reported PCRs, includes requiredPcrs),
 * pcrDigest = SHA-256 of the reported values concatenated in the signed selection's order, then counters
 * against `previous` (see checkNotRolledBack). A parsed `akPublic` is checked with checkAttestationKey first
 * (AK_REJECTED). Throws AttestationError only; the codes are QUOTE_* and AK_REJECTED.
 *
 * Counters are only meaningful from an AK in the endorsement (or platform) hierarchy: for keys in the owner
 * hierarchy the TPM obfuscates resetCount, restartCount and firmwareVersion (clock is never obfuscated).
 */
export function verifyQuote(input: VerifyQuoteInput): VerifiedQuote {
  const attest = asBytes(input.attest, 'QUOTE_MALFORMED', 'attest');
  const nonce = asBytes(input.expectedNonce, 'QUOTE_MALFORMED', 'expected nonce');
  if (nonce.length === 0 || nonce.length > MAX_DIGEST_BYTES) {
    throw new AttestationError('QUOTE_MALFORMED', 'expected nonce must be 1 to 64 bytes');
  }
  const reported = readPcrValues(input.pcrValues, 'QUOTE_MALFORMED', 'pcrValues');
  const required =
    input.requiredPcrs === undefined
      ? []
      : readPcrList(input.requiredPcrs, 'QUOTE_MALFORMED', 'requiredPcrs');
  const previous = input.previous === undefined ? undefined : readCounters(input.previous);
  const key = attestationKeyObject(input.akPublic);

  const header = attestHeader(attest, 'QUOTE_MALFORMED');
  if (header.magic !== TPM_GENERATED_VALUE) {
    throw new AttestationError('QUOTE_BAD_MAGIC', 'attest does not start with TPM_GENERATED_VALUE');
  }
  if (header.type !== TPM_ST_ATTEST_QUOTE) {
    throw new AttestationError(
      'QUOTE_WRONG_TYPE',
      `attest type ${hex16(header.type)} is not a quote (0x8018)`,
    );
  }
  let parsed: TpmsAttest;
  try {
    parsed = parseTpmsAttest(attest);
  } catch (error) {
    throw rewrap(error, 'QUOTE_MALFORMED');
  }
  const quote = parsed.quote;
  if (!quote) throw new AttestationError('QUOTE_MALFORMED', 'attest has no quote body');

  verifyAttestSignature(key, attest, input.signature, {
    malformed: 'QUOTE_MALFORMED',
    invalid: 'QUOTE_SIGNATURE_INVALID',
  });

  if (parsed.extraData.length !== nonce.length || !timingSafeEqual(parsed.extraData, nonce)) {
    throw new AttestationError('QUOTE_NONCE_MISMATCH', 'quote was not made for this nonce');
  }

  const order = signedPcrOrder(quote.selection);
  for (const pcr of order) {
    if (!reported.has(pcr)) {
      throw new AttestationError(
        'QUOTE_SELECTION_MISMATCH',
        `quote covers PCR ${pcr} but no value was given for it`,
      );
    }
  }
  const covered = new Set(order);
  for (const pcr of reported.keys()) {
    if (!covered.has(pcr)) {
      throw new AttestationError(
        'QUOTE_SELECTION_MISMATCH',
        `a value was given for PCR ${pcr}, which the quote does not cover`,
      );
    }
  }
  for (const pcr of required) {
    if (!covered.has(pcr)) {
      throw new AttestationError('QUOTE_SELECTION_MISMATCH', `quote does not cover required PCR ${pcr}`);
    }
  }

  const hash = createHash('sha256');
  for (const pcr of order) hash.update(reported.get(pcr)!);
  const digest = hash.digest();
  if (quote.pcrDigest.length !== digest.length || !timingSafeEqual(quote.pcrDigest, digest)) {
    throw new AttestationError(
      'QUOTE_PCR_DIGEST_MISMATCH',
      'reported PCR values do not hash to the quoted digest',
    );
  }

  if (previous) checkNotRolledBack(previous, parsed);

  return {
    clock: parsed.clock,
    resetCount: parsed.resetCount,
    restartCount: parsed.restartCount,
    safe: parsed.safe,
    firmwareVersion: parsed.firmwareVersion,
    pcrs: order,
  };
}

/**
 * The PCRs in the order the TPM hashed them: banks in selection order, PCRs ascending within a bank. Only the
 * sha256 bank counts here, and a PCR selected twice would be hashed twice, so both are refused.
 */
function signedPcrOrder(selection: PcrBankSelection[]): number[] {
  const order: number[] = [];
  const seen = new Set<number>();
  for (const bank of selection) {
    if (bank.hashAlg !== TPM_ALG.SHA256) {
      throw new AttestationError(
        'QUOTE_SELECTION_MISMATCH',
        `quote selects bank ${hex16(bank.hashAlg)}, only sha256 is accepted`,
      );
    }
    for (const pcr of bank.pcrs) {
      if (seen.has(pcr))
        throw new AttestationError('QUOTE_SELECTION_MISMATCH', `quote selects PCR ${pcr} twice`);
      seen.add(pcr);
      order.push(pcr);
    }
  }
  if (order.length === 0) throw new AttestationError('QUOTE_SELECTION_MISMATCH', 'quote selects no PCR');
  return order;
}

/**
 * How far behind a clock already seen a TPM reporting `safe` = YES may be after a power loss: two of the
 * longest NV clock save intervals the specification allows (Part 2, TPMS_CLOCK_INFO: Clock is recorded in NV
 * at least once per 2^22 ms, about 70 minutes; a TPM reports its own as TPM_PT_CLOCK_UPDATE). After
 * four power losses in a row, swtpm (interval 4,096 ms) said safe = YES with a clock up to 2.7 s below one it
 * had quoted before, in 7 of 60 trials here; a power loss that also lost the TPM's latest clock save explains
 * it, and bounds the fallback by two intervals.
 */
export const CLOCK_FALLBACK_TOLERANCE_MS = 2n * 2n ** 22n;

/**
 * A TPM's resetCount only grows (TPM Reset), restartCount only grows between resets, and clock only grows
 * while both stay the same. Clock may legitimately fall back after a power loss, when the TPM reports
 * `safe` = NO until it has saved Clock to NV again. A quote with safe = YES and a clock further below one
 * already seen than a power loss explains (CLOCK_FALLBACK_TOLERANCE_MS) is refused too, whatever resetCount
 * says.
 *
 * This catches a TPM whose persistent state was restored from an older copy (a firmware or software TPM) and
 * an old quote presented again. It does not catch an attacker who, after restoring, resets the TPM past the
 * recorded resetCount while its clock says safe = NO or is within the tolerance, nor one who holds owner
 * authorization on the restored TPM: TPM2_ClockSet can move Clock forward past any value.
 */
function checkNotRolledBack(
  previous: { resetCount: number; restartCount: number; clock: bigint },
  current: TpmsAttest,
): void {
  const countersBehind =
    current.resetCount < previous.resetCount ||
    (current.resetCount === previous.resetCount &&
      (current.restartCount < previous.restartCount ||
        (current.restartCount === previous.restartCount && current.clock < previous.clock)));
  const safeClockBehind = current.safe && previous.clock - current.clock > CLOCK_FALLBACK_TOLERANCE_MS;
  if (countersBehind || safeClockBehind) {
    throw new AttestationError(
      'QUOTE_COUNTER_ROLLBACK',
      'TPM counters went backwards since the previous quote',
      {
        previous: { ...previous, clock: previous.clock.toString() },
        current: {
          resetCount: current.resetCount,
          restartCount: current.restartCount,
          clock: current.clock.toString(),
          safe: current.safe,
        },
      },
    );
  }
}

function readCounters(previous: unknown): { resetCount: number; restartCount: number; clock: bigint } {
  const p = previous as Partial<Record<keyof TpmCounters, unknown>> | null;
  const u32 = (v: unknown): v is number =>
    typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
  if (typeof p !== 'object' || p === null || !u32(p.resetCount) || !u32(p.restartCount)) {
    throw new AttestationError(
      'QUOTE_MALFORMED',
      'previous counters must have integer resetCount and restartCount',
    );
  }
  const clock = readClock(p.clock);
  return { resetCount: p.resetCount, restartCount: p.restartCount, clock };
}

function readClock(value: unknown): bigint {
  if (typeof value === 'bigint' && value >= 0n && value < 1n << 64n) return value;
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  if (typeof value === 'string' && /^\d{1,20}$/.test(value) && BigInt(value) < 1n << 64n)
    return BigInt(value);
  throw new AttestationError('QUOTE_MALFORMED', 'previous clock must be a non-negative u64 integer');
}
