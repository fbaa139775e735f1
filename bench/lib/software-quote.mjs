// TPM structures made in software, for load: what a node's TPM would send (TPM2B_PUBLIC of its AK and device
// key, TPMS_ATTEST of a quote, TPMT_SIGNATURE over it), byte for byte in the layouts of
// /work/shared/notes/tpm.md, signed with node:crypto keys instead of TPM-resident ones. Nothing here proves
// anything to a verifier that does not already trust these keys: it exists so that a benchmark can drive the
// real verification path without a TPM per simulated node.
import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The api's test kit, built (`make bench` builds first), as the benches load every built module: the one copy
// of the TPM2B_PUBLIC layout of a signing key held in software.
const testKit = fileURLToPath(
  new URL('../../dist/apps/api/src/testing/software-device-key.js', import.meta.url),
);
if (!existsSync(testKit)) throw new Error(`${testKit} is missing: run \`make bench\`, which builds first`);
const { SIGNING_KEY_ATTRIBUTES, softwareTpmPublicArea } = await import(pathToFileURL(testKit).href);

const TPM_ALG_SHA256 = 0x000b;
const TPM_ALG_ECDSA = 0x0018;
const TPM_GENERATED_VALUE = 0xff544347;
const TPM_ST_ATTEST_QUOTE = 0x8018;

const u16 = (v) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
};
const u32 = (v) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(v >>> 0);
  return b;
};
const u64 = (v) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
};
const tpm2b = (bytes) => Buffer.concat([u16(bytes.length), bytes]);

/** What an AK looks like: a restricted ECDSA-SHA256 P-256 signing key. */
export const AK_ATTRIBUTES = SIGNING_KEY_ATTRIBUTES.ak;
/** What a device key looks like: the same, not restricted (it signs arbitrary digests). */
export const DEVICE_KEY_ATTRIBUTES = SIGNING_KEY_ATTRIBUTES.deviceKey;

/**
 * A P-256 key pair with its TPM2B_PUBLIC (encoded by the api's test kit, the one copy of that layout) and TPM
 * name (u16 nameAlg ‖ SHA-256 of the TPMT_PUBLIC).
 * @param {number} attributes TPMA_OBJECT, e.g. AK_ATTRIBUTES
 * @returns {{ privateKey: import('node:crypto').KeyObject, publicKey: import('node:crypto').KeyObject,
 *   tpm2bPublic: Buffer, name: Buffer }}
 */
export function softwareTpmKey(attributes) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const tpmtPublic = softwareTpmPublicArea(publicKey, attributes);
  const name = Buffer.concat([u16(TPM_ALG_SHA256), createHash('sha256').update(tpmtPublic).digest()]);
  return { privateKey, publicKey, tpm2bPublic: tpm2b(tpmtPublic), name };
}

/**
 * A TPMS_ATTEST of a quote over the sha256 bank, and its ECDSA TPMT_SIGNATURE made with `akPrivateKey`.
 * `pcrValues` maps PCR index to its 32-byte value; the selection and the digest follow ascending index order,
 * the order in which a TPM hashes them.
 * @param {{ akPrivateKey: import('node:crypto').KeyObject, akName: Buffer, nonce: Buffer,
 *   pcrValues: Map<number, Buffer>, clock: bigint, resetCount: number, restartCount: number,
 *   firmwareVersion?: bigint }} input
 * @returns {{ attest: Buffer, signature: Buffer }}
 */
export function softwareQuote(input) {
  const { akPrivateKey, akName, nonce, pcrValues, clock, resetCount, restartCount } = input;
  const pcrs = [...pcrValues.keys()].sort((a, b) => a - b);
  const bitmap = Buffer.alloc(3);
  for (const pcr of pcrs) bitmap[pcr >> 3] |= 1 << (pcr & 7);
  const pcrDigest = createHash('sha256');
  for (const pcr of pcrs) pcrDigest.update(/** @type {Buffer} */ (pcrValues.get(pcr)));
  const attest = Buffer.concat([
    u32(TPM_GENERATED_VALUE),
    u16(TPM_ST_ATTEST_QUOTE),
    tpm2b(akName), // qualifiedSigner
    tpm2b(nonce), // extraData
    u64(clock),
    u32(resetCount),
    u32(restartCount),
    Buffer.from([1]), // safe
    u64(input.firmwareVersion ?? 0x2023_0001n),
    u32(1), // one bank
    u16(TPM_ALG_SHA256),
    Buffer.from([bitmap.length]),
    bitmap,
    tpm2b(pcrDigest.digest()),
  ]);
  const rs = sign('sha256', attest, { key: akPrivateKey, dsaEncoding: 'ieee-p1363' });
  const signature = Buffer.concat([
    u16(TPM_ALG_ECDSA),
    u16(TPM_ALG_SHA256),
    tpm2b(rs.subarray(0, 32)),
    tpm2b(rs.subarray(32)),
  ]);
  return { attest, signature };
}
