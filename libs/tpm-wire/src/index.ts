export { TpmWireError } from './tpm-wire-error.js';
export type { TpmWireErrorCode } from './tpm-wire-error.js';
export {
  eccCurve,
  hex16,
  MAX_DIGEST_BYTES,
  MAX_NAME_BYTES,
  TPM_ALG,
  TPM_ECC_CURVE,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_CERTIFY,
  TPM_ST_ATTEST_QUOTE,
  tpmHash,
} from './tpm-constants.js';
export type { EccCurveInfo, HashName } from './tpm-constants.js';
export { bytesOf } from './tpm-reader.js';
export { leftPad, parseTpm2bPublic, parseTpmtPublic, publicKeyObject, tpmObjectName } from './tpm-public.js';
export type { TpmObjectAttributes, TpmPublic, TpmScheme, TpmSymmetric } from './tpm-public.js';
export { parseTpmsAttest } from './tpms-attest.js';
export type { PcrBankSelection, TpmsAttest } from './tpms-attest.js';
export { ecdsaSignatureToDer, ecdsaSignatureToRawRs, parseTpmtSignatureEcdsa } from './tpmt-signature.js';
export type { TpmEcdsaSignature } from './tpmt-signature.js';
export { ekPolicyDigests, ekTemplate, ekTemplateOf, TCG_EK_TEMPLATES } from './ek-templates.js';
export type { EkPolicyDigests, EkPolicyHash, EkTemplate } from './ek-templates.js';
export { ekIssuerSerialSha256, ekKeySha256, normalSerial } from './ek-identity.js';
export { credentialBlob, encodeTpm2b, withCredentialBlobHeader } from './credential-blob.js';
