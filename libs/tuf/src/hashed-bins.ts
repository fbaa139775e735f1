import { createHash } from 'node:crypto';

/**
 * TUF succinct hash-bin delegation (TAP 15): a target path lives in the bin numbered by the first
 * `bitLength` bits of sha256(path); bin names are `${prefix}-${hex}` with the hex zero-padded.
 */
export function binNameFor(path: string, prefix: string, bitLength: number): string {
  const digest = createHash('sha256').update(path).digest();
  const index = digest.readUInt32BE(0) >>> (32 - bitLength);
  return binName(prefix, bitLength, index);
}

export function binName(prefix: string, bitLength: number, index: number): string {
  const width = Math.ceil(bitLength / 4);
  return `${prefix}-${index.toString(16).padStart(width, '0')}`;
}

export function allBinNames(prefix: string, bitLength: number): string[] {
  return Array.from({ length: 2 ** bitLength }, (_, i) => binName(prefix, bitLength, i));
}
