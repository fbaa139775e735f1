import { createHash } from 'node:crypto';
import { hex16, TPM_ALG, TPM_ECC_CURVE } from './tpm-constants.js';
import type { TpmPublic } from './tpm-public.js';
import { TpmWireError } from './tpm-wire-error.js';

/**
 * The endorsement key templates of the TCG EK Credential Profile (2.3 and later, Annex B) that Otter accepts:
 * RSA 2048 and ECC NIST P-256 in the low range (L-1, L-2) and RSA 2048, ECC P-256 and ECC P-384 in the high
 * range (H-1, H-2, H-3). A TPM derives its EK from the template and its endorsement seed, so a real EK's
 * public area is the template with the key in `unique`: every other byte is fixed. A public area that
 * differs anywhere else did not come from a TPM's EK, whatever key it carries.
 */
export interface EkTemplate {
  /** The profile's name for it: L-1, L-2, H-1, H-2, H-3. */
  name: 'L-1' | 'L-2' | 'H-1' | 'H-2' | 'H-3';
  description: string;
  type: 'rsa' | 'ecc';
  nameAlg: number;
  /** TPMA_OBJECT exactly, reserved bits included. */
  objectAttributes: number;
  /** PolicyA (PolicySecret of the endorsement hierarchy) or PolicyB (PolicyOR of PolicyA and PolicyC). */
  policy: 'A' | 'B';
  /** AES in CFB mode, this many bits. */
  symmetricKeyBits: 128 | 256;
  rsaKeyBits?: 2048;
  curveId?: number;
  /** Size of the key in `unique`: the RSA modulus, or each ECC coordinate. */
  uniqueBytes: number;
  /** NV index of the EK certificate for this template. */
  certificateNvIndex: number;
}

const TPMA = {
  fixedTPM: 1 << 1,
  fixedParent: 1 << 4,
  sensitiveDataOrigin: 1 << 5,
  userWithAuth: 1 << 6,
  adminWithPolicy: 1 << 7,
  restricted: 1 << 16,
  decrypt: 1 << 17,
} as const;

/** 0x000300B2: an EK authorized only through its policy (PolicyA). */
const LOW_RANGE_ATTRIBUTES =
  TPMA.fixedTPM |
  TPMA.fixedParent |
  TPMA.sensitiveDataOrigin |
  TPMA.adminWithPolicy |
  TPMA.restricted |
  TPMA.decrypt;
/** 0x000300F2: the high range adds userWithAuth (its policy B has a second branch). */
const HIGH_RANGE_ATTRIBUTES = LOW_RANGE_ATTRIBUTES | TPMA.userWithAuth;

export const TCG_EK_TEMPLATES: readonly EkTemplate[] = [
  {
    name: 'L-1',
    description: 'RSA 2048, low range',
    type: 'rsa',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: LOW_RANGE_ATTRIBUTES,
    policy: 'A',
    symmetricKeyBits: 128,
    rsaKeyBits: 2048,
    uniqueBytes: 256,
    certificateNvIndex: 0x01c00002,
  },
  {
    name: 'L-2',
    description: 'ECC NIST P-256, low range',
    type: 'ecc',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: LOW_RANGE_ATTRIBUTES,
    policy: 'A',
    symmetricKeyBits: 128,
    curveId: TPM_ECC_CURVE.NIST_P256,
    uniqueBytes: 32,
    certificateNvIndex: 0x01c0000a,
  },
  {
    name: 'H-1',
    description: 'RSA 2048, high range',
    type: 'rsa',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: HIGH_RANGE_ATTRIBUTES,
    policy: 'B',
    symmetricKeyBits: 128,
    rsaKeyBits: 2048,
    uniqueBytes: 256,
    certificateNvIndex: 0x01c00012,
  },
  {
    name: 'H-2',
    description: 'ECC NIST P-256, high range',
    type: 'ecc',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: HIGH_RANGE_ATTRIBUTES,
    policy: 'B',
    symmetricKeyBits: 128,
    curveId: TPM_ECC_CURVE.NIST_P256,
    uniqueBytes: 32,
    certificateNvIndex: 0x01c00014,
  },
  {
    name: 'H-3',
    description: 'ECC NIST P-384, high range',
    type: 'ecc',
    nameAlg: TPM_ALG.SHA384,
    objectAttributes: HIGH_RANGE_ATTRIBUTES,
    policy: 'B',
    symmetricKeyBits: 256,
    curveId: TPM_ECC_CURVE.NIST_P384,
    uniqueBytes: 48,
    certificateNvIndex: 0x01c00016,
  },
];

/** The template of this name. */
export function ekTemplate(name: EkTemplate['name']): EkTemplate {
  return TCG_EK_TEMPLATES.find((t) => t.name === name)!;
}

const TPM_CC_POLICY_SECRET = 0x151;
const TPM_CC_POLICY_OR = 0x171;
const TPM_RH_ENDORSEMENT = 0x4000000b;

/**
 * PolicyC of the profile (PolicyAuthorizeNV naming the EK policy NV index), as it lists the digests: it cannot
 * be computed from anything smaller than the NV index's public area, and only the digest is ever needed.
 */
const POLICY_C: Record<EkPolicyHash, string> = {
  sha256: '3767e2edd43ff45a3a7e1eaefcef78643dca964632e7aad82c673a30d8633fde',
  sha384: 'd6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165',
};

export type EkPolicyHash = 'sha256' | 'sha384';

export interface EkPolicyDigests {
  /** PolicySecret(TPM_RH_ENDORSEMENT), empty policyRef: the low-range authPolicy. */
  a: Buffer;
  /** PolicyOR(PolicyA, PolicyC): the high-range authPolicy. */
  b: Buffer;
  c: Buffer;
}

/** The EK authorization policy digests in one hash: what the verifier compares and the agent satisfies. */
export function ekPolicyDigests(hash: EkPolicyHash): EkPolicyDigests {
  const zeros = Buffer.alloc(hash === 'sha256' ? 32 : 48);
  const secretStep = createHash(hash)
    .update(Buffer.concat([zeros, u32(TPM_CC_POLICY_SECRET), u32(TPM_RH_ENDORSEMENT)]))
    .digest();
  // policyDigest' = H(policyDigest ‖ policyRef); the EK's policyRef is empty.
  const a = createHash(hash).update(secretStep).digest();
  const c = Buffer.from(POLICY_C[hash], 'hex');
  const b = createHash(hash)
    .update(Buffer.concat([zeros, u32(TPM_CC_POLICY_OR), a, c]))
    .digest();
  return { a, b, c };
}

const POLICY_HASH: Record<number, EkPolicyHash> = {
  [TPM_ALG.SHA256]: 'sha256',
  [TPM_ALG.SHA384]: 'sha384',
};

/**
 * The template `ekPublic` is an instance of, or TpmWireError EK_TEMPLATE_MISMATCH naming every field that
 * differs from the nearest template of its kind and size.
 */
export function ekTemplateOf(ekPublic: TpmPublic): EkTemplate {
  const candidates = TCG_EK_TEMPLATES.filter((t) => t.type === ekPublic.type && sameSize(t, ekPublic));
  if (candidates.length === 0) {
    throw new TpmWireError(
      'EK_TEMPLATE_MISMATCH',
      `ekPublic is ${describeKey(ekPublic)}: an EK must be RSA 2048, ECC NIST P-256 or ECC NIST P-384 (TCG EK templates L-1, L-2, H-1, H-2, H-3)`,
    );
  }
  const ranked = candidates
    .map((template) => ({ template, differences: templateDifferences(template, ekPublic) }))
    .sort((x, y) => x.differences.length - y.differences.length);
  const best = ranked[0]!;
  if (best.differences.length === 0) return best.template;
  throw new TpmWireError(
    'EK_TEMPLATE_MISMATCH',
    `ekPublic is not the TCG EK template ${best.template.name} (${best.template.description}): ${best.differences.join('; ')}`,
  );
}

function sameSize(template: EkTemplate, key: TpmPublic): boolean {
  return template.type === 'rsa'
    ? key.rsa?.keyBits === template.rsaKeyBits
    : key.ecc?.curveId === template.curveId;
}

function templateDifferences(template: EkTemplate, key: TpmPublic): string[] {
  const differences: string[] = [];
  const differs = (field: string, got: string, want: string): void => {
    if (got !== want) differences.push(`${field} is ${got}, the template has ${want}`);
  };
  differs('nameAlg', hex16(key.nameAlg), hex16(template.nameAlg));
  differs('objectAttributes', hex32(key.objectAttributes.value), hex32(template.objectAttributes));
  const hash = POLICY_HASH[template.nameAlg]!;
  const policy = ekPolicyDigests(hash)[template.policy === 'A' ? 'a' : 'b'];
  if (!key.authPolicy.equals(policy)) {
    differences.push(`authPolicy is not Policy${template.policy}_${hash.toUpperCase()}`);
  }
  const { algorithm, keyBits, mode } = key.symmetric;
  const symmetric =
    algorithm === TPM_ALG.NULL
      ? 'null'
      : algorithm === TPM_ALG.AES && mode === TPM_ALG.CFB
        ? `AES-${keyBits}-CFB`
        : `${hex16(algorithm)} ${keyBits} bits mode ${hex16(mode ?? 0)}`;
  differs('symmetric', symmetric, `AES-${template.symmetricKeyBits}-CFB`);
  differs('scheme', hex16(key.scheme.scheme), hex16(TPM_ALG.NULL));
  if (key.rsa) {
    // 0 stands for 65537; a TPM writes 0, so 65537 spelled out is another public area for the same key.
    differs('the RSA exponent field', String(key.rsa.exponentField), '0');
    differs('unique (the modulus)', `${key.rsa.modulus.length} bytes`, `${template.uniqueBytes} bytes`);
  }
  if (key.ecc) {
    differs('kdf', hex16(key.ecc.kdf.scheme), hex16(TPM_ALG.NULL));
    differs('unique x', `${key.ecc.x.length} bytes`, `${template.uniqueBytes} bytes`);
    differs('unique y', `${key.ecc.y.length} bytes`, `${template.uniqueBytes} bytes`);
  }
  return differences;
}

function describeKey(key: TpmPublic): string {
  if (key.rsa) return `RSA ${key.rsa.keyBits}`;
  return `ECC curve ${hex16(key.ecc?.curveId ?? 0)}`;
}

function hex32(value: number): string {
  return `0x${value.toString(16).padStart(8, '0')}`;
}

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}
