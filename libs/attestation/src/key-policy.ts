import { ekTemplateOf, type EkTemplate } from '#otter/tpm-wire';
import { AttestationError } from './attestation-error.js';
import {
  fromWire,
  hex16,
  publicKeyObject,
  TPM_ALG,
  TPM_ECC_CURVE,
  tpmObjectName,
  type TpmPublic,
} from './tpm-wire.js';

export interface KeyCheckResult {
  /** The key's TPM name (nameAlg ‖ H(TPMT_PUBLIC)): what MakeCredential binds to and certify reports. */
  name: Buffer;
  /**
   * Whether the key is exempt from dictionary-attack lockout. The Otter agent sets it so that unclean power
   * loss cannot lock the device out of its own keys; a key without it still passes.
   */
  noDA: boolean;
}

/**
 * An attestation key must be a TPM-resident restricted signing key: ECC P-256, restricted + sign, not decrypt,
 * fixedTPM, fixedParent, sensitiveDataOrigin, scheme ECDSA with SHA-256. `restricted` is what makes its quotes
 * and certifications evidence: a restricted key refuses to sign data that starts with TPM_GENERATED_VALUE
 * unless the TPM itself built it. Throws AK_REJECTED listing every violation.
 */
export function checkAttestationKey(key: TpmPublic): KeyCheckResult {
  const violations = commonViolations(key);
  const a = key.objectAttributes;
  if (!a.restricted) violations.push('not restricted');
  if (a.decrypt) violations.push('decrypt is set');
  if (key.scheme.scheme !== TPM_ALG.ECDSA || key.scheme.hashAlg !== TPM_ALG.SHA256) {
    violations.push(
      `scheme is ${hex16(key.scheme.scheme)}/${hex16(key.scheme.hashAlg ?? 0)}, not ECDSA-SHA256`,
    );
  }
  return finish(key, violations, 'AK_REJECTED', 'attestation key');
}

/**
 * An endorsement key must be exactly one of the TCG EK templates (RSA 2048 or ECC P-256, low or high range, or
 * ECC P-384 high range): attributes, policy, symmetric cipher, scheme, RSA exponent field and key size as the
 * template fixes them. The verifier checks the EK's key against its certificate and uses only the key, its
 * nameAlg and its cipher for MakeCredential, so any other byte of the public area could be changed freely:
 * refusing every other shape leaves one public area per EK. Throws EK_TEMPLATE_MISMATCH naming each difference.
 */
export function checkEndorsementKey(key: TpmPublic): EkTemplate {
  return fromWire(() => ekTemplateOf(key));
}

/**
 * A device signing key (what the agent signs requests with): ECC P-256, sign, not restricted (it signs
 * arbitrary digests), fixedTPM, fixedParent, sensitiveDataOrigin. Throws DEVICE_KEY_REJECTED.
 */
export function checkDeviceKey(key: TpmPublic): KeyCheckResult {
  const violations = commonViolations(key);
  if (key.objectAttributes.restricted) violations.push('restricted is set');
  return finish(key, violations, 'DEVICE_KEY_REJECTED', 'device key');
}

function commonViolations(key: TpmPublic): string[] {
  const violations: string[] = [];
  if (key.type !== 'ecc' || key.ecc?.curveId !== TPM_ECC_CURVE.NIST_P256) violations.push('not ECC P-256');
  const a = key.objectAttributes;
  if (!a.sign) violations.push('sign is not set');
  if (!a.fixedTPM) violations.push('not fixedTPM');
  if (!a.fixedParent) violations.push('not fixedParent');
  if (!a.sensitiveDataOrigin) violations.push('not sensitiveDataOrigin (the key was imported)');
  return violations;
}

function finish(
  key: TpmPublic,
  violations: string[],
  code: 'AK_REJECTED' | 'DEVICE_KEY_REJECTED',
  what: string,
): KeyCheckResult {
  if (violations.length > 0) {
    throw new AttestationError(code, `${what} refused: ${violations.join(', ')}`, { violations });
  }
  const name = nameOrReject(key, code, what);
  // Also proves the point is on the curve, so a later verification cannot fail for that reason.
  try {
    publicKeyObject(key);
  } catch (error) {
    const reason = error instanceof AttestationError ? error.reason : 'unusable public key';
    throw new AttestationError(code, `${what} refused: ${reason}`, { violations: [reason] });
  }
  return { name, noDA: key.objectAttributes.noDA };
}

function nameOrReject(key: TpmPublic, code: 'AK_REJECTED' | 'DEVICE_KEY_REJECTED', what: string): Buffer {
  try {
    return tpmObjectName(key);
  } catch {
    const reason = `nameAlg ${hex16(key.nameAlg)} unsupported`;
    throw new AttestationError(code, `${what} refused: ${reason}`, { violations: [reason] });
  }
}
