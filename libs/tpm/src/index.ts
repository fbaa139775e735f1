export { startSoftwareTpm } from './software-tpm.js';
export type { SoftwareTpm, SoftwareTpmCa } from './software-tpm.js';
export {
  DEFAULT_TPM_HANDLES,
  EK_CERTIFICATE_NV_INDEX,
  ekPolicySecretDigest,
  Tpm2Tools,
  Tpm2ToolsError,
  TpmError,
} from './tpm2-tools.js';
export type {
  EkKind,
  Tpm2ToolsOptions,
  TpmErrorCode,
  TpmKey,
  TpmPersistentHandles,
  TpmQuote,
} from './tpm2-tools.js';
export {
  ecdsaSignatureToRawRs,
  hasObjectAttributes,
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtSignature,
  TPM_ALG,
  TPM_GENERATED_VALUE,
  TPMA_OBJECT,
  TpmStructureError,
  tpmObjectName,
  tpmPublicToKeyObject,
} from './tpm-structures.js';
export type {
  TpmEccPublic,
  TpmEcdsaSignature,
  TpmObjectAttribute,
  TpmPcrSelection,
  TpmPublic,
  TpmRsaPublic,
  TpmsAttest,
  TpmsCertifyAttest,
  TpmsClockInfo,
  TpmsQuoteAttest,
} from './tpm-structures.js';
