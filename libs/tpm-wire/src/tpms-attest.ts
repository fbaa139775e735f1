import { TpmWireError } from './tpm-wire-error.js';
import {
  hex16,
  MAX_DIGEST_BYTES,
  MAX_NAME_BYTES,
  TPM_ST_ATTEST_CERTIFY,
  TPM_ST_ATTEST_QUOTE,
} from './tpm-constants.js';
import { asBytes, TpmReader } from './tpm-reader.js';

/** One TPMS_PCR_SELECTION: a bank and the PCRs it selects, ascending (bit i of byte j is PCR 8j+i). */
export interface PcrBankSelection {
  hashAlg: number;
  pcrs: number[];
}

/** A parsed TPMS_ATTEST of a quote or a certify. */
export interface TpmsAttest {
  /** Not checked here (verifyQuote / verifyCertify do): TPM_GENERATED_VALUE is 0xFF544347. */
  magic: number;
  type: 'quote' | 'certify';
  qualifiedSigner: Buffer;
  /** The caller's qualifying data: the nonce. */
  extraData: Buffer;
  /** Milliseconds the TPM has been powered, u64 (a bigint: a TPM may set it past 2^53). */
  clock: bigint;
  resetCount: number;
  restartCount: number;
  safe: boolean;
  firmwareVersion: bigint;
  quote?: { selection: PcrBankSelection[]; pcrDigest: Buffer };
  certify?: { name: Buffer; qualifiedName: Buffer };
}

/** A TPM has a handful of banks (HASH_COUNT); more selections than this are not from a TPM. */
const MAX_PCR_BANKS = 16;
/** PCR_SELECT_MAX in real TPMs is 3 (24 PCRs); 32 bytes (256 PCRs) bounds the loop generously. */
const MAX_SIZEOF_SELECT = 32;
/** Signed attestation structures are a few hundred bytes. */
const MAX_ATTEST_BYTES = 4096;

/**
 * Parses a TPMS_ATTEST: the bare structure the TPM signs (as `tpm2_quote -m` and `tpm2_certify -o` write
 * it), not the TPM2B_ATTEST around it. Only quote (0x8018) and certify (0x8017) bodies are understood; the
 * input must be exactly one structure. The magic is returned, not checked.
 */
export function parseTpmsAttest(bytes: Uint8Array): TpmsAttest {
  const input = asBytes(bytes, 'TPM_ATTEST_MALFORMED', 'TPMS_ATTEST');
  if (input.length > MAX_ATTEST_BYTES) {
    throw new TpmWireError('TPM_ATTEST_MALFORMED', `TPMS_ATTEST is ${input.length} bytes, too large`);
  }
  const r = new TpmReader(input, 'TPM_ATTEST_MALFORMED', 'TPMS_ATTEST');
  const magic = r.u32('magic');
  const typeTag = r.u16('type');
  if (typeTag !== TPM_ST_ATTEST_QUOTE && typeTag !== TPM_ST_ATTEST_CERTIFY) {
    r.fail(`attestation type ${hex16(typeTag)} is neither quote nor certify`);
  }
  const qualifiedSigner = r.tpm2b('qualifiedSigner', MAX_NAME_BYTES);
  const extraData = r.tpm2b('extraData', MAX_DIGEST_BYTES);
  const clock = r.u64('clock');
  const resetCount = r.u32('resetCount');
  const restartCount = r.u32('restartCount');
  const safeByte = r.u8('safe');
  if (safeByte > 1) r.fail(`safe is ${safeByte}, not a TPMI_YES_NO`);
  const firmwareVersion = r.u64('firmwareVersion');
  const header = {
    magic,
    qualifiedSigner,
    extraData,
    clock,
    resetCount,
    restartCount,
    safe: safeByte === 1,
    firmwareVersion,
  };

  if (typeTag === TPM_ST_ATTEST_QUOTE) {
    const selection = readPcrSelection(r);
    const pcrDigest = r.tpm2b('pcrDigest', MAX_DIGEST_BYTES);
    r.end();
    return { ...header, type: 'quote', quote: { selection, pcrDigest } };
  }
  const name = r.tpm2b('name', MAX_NAME_BYTES);
  const qualifiedName = r.tpm2b('qualifiedName', MAX_NAME_BYTES);
  r.end();
  return { ...header, type: 'certify', certify: { name, qualifiedName } };
}

function readPcrSelection(r: TpmReader): PcrBankSelection[] {
  const count = r.u32('pcrSelect count');
  if (count > MAX_PCR_BANKS) r.fail(`pcrSelect count ${count} exceeds ${MAX_PCR_BANKS}`);
  const banks: PcrBankSelection[] = [];
  for (let bank = 0; bank < count; bank++) {
    const hashAlg = r.u16('pcrSelect hash');
    const sizeofSelect = r.u8('pcrSelect sizeofSelect');
    if (sizeofSelect > MAX_SIZEOF_SELECT) r.fail(`sizeofSelect ${sizeofSelect} exceeds ${MAX_SIZEOF_SELECT}`);
    const bitmap = r.take(sizeofSelect, 'pcrSelect bitmap');
    const pcrs: number[] = [];
    for (let byte = 0; byte < bitmap.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        if ((bitmap[byte]! >> bit) & 1) pcrs.push(byte * 8 + bit);
      }
    }
    banks.push({ hashAlg, pcrs });
  }
  return banks;
}
