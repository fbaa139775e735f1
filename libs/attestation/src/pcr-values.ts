import { AttestationError, type AttestationErrorCode } from './attestation-error.js';

/** PCR indices this library accepts: a TPM has 24; a selection bitmap of 32 bytes names at most 256. */
export const MAX_PCR_INDEX = 255;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * Checks a `Record<pcr, hex sha256>` from outside (a device's JSON, an operator's policy) and returns it as a
 * Map of PCR index to the 32-byte value. Keys must be canonical decimal integers 0..255 and values 64 hex
 * digits; the key count is checked before anything iterates over it.
 */
export function readPcrValues(input: unknown, code: AttestationErrorCode, what: string): Map<number, Buffer> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AttestationError(code, `${what} must be an object of PCR index to hex SHA-256 value`);
  }
  const keys = Object.keys(input);
  if (keys.length > MAX_PCR_INDEX + 1) throw new AttestationError(code, `${what} names too many PCRs`);
  const values = new Map<number, Buffer>();
  for (const key of keys) {
    const pcr = pcrIndex(key, code, what);
    const value: unknown = (input as Record<string, unknown>)[key];
    if (typeof value !== 'string' || !SHA256_HEX.test(value)) {
      throw new AttestationError(code, `${what}: PCR ${pcr} is not a hex SHA-256 value`);
    }
    values.set(pcr, Buffer.from(value, 'hex'));
  }
  return values;
}

/** A list of PCR indices (e.g. requiredPcrs), bounded and checked like the keys above. */
export function readPcrList(input: unknown, code: AttestationErrorCode, what: string): number[] {
  if (!Array.isArray(input) || input.length > MAX_PCR_INDEX + 1) {
    throw new AttestationError(code, `${what} must be an array of at most ${MAX_PCR_INDEX + 1} PCR indices`);
  }
  return input.map((value: unknown) => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > MAX_PCR_INDEX) {
      throw new AttestationError(code, `${what}: ${String(value)} is not a PCR index`);
    }
    return value;
  });
}

function pcrIndex(key: string, code: AttestationErrorCode, what: string): number {
  const pcr = Number(key);
  if (!Number.isInteger(pcr) || pcr < 0 || pcr > MAX_PCR_INDEX || String(pcr) !== key) {
    throw new AttestationError(code, `${what}: "${key.slice(0, 16)}" is not a PCR index`);
  }
  return pcr;
}
