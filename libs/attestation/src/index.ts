export { AttestationError } from './attestation-error.js';
export type { AttestationErrorCode } from './attestation-error.js';
export {
  TPM_ALG,
  TPM_ECC_CURVE,
  TPM_GENERATED_VALUE,
  TPM_ST_ATTEST_CERTIFY,
  TPM_ST_ATTEST_QUOTE,
} from './tpm-constants.js';
export type { HashName } from './tpm-constants.js';
export { parseTpm2bPublic, parseTpmtPublic, publicKeyObject, tpmObjectName } from './tpm-public.js';
export type { TpmObjectAttributes, TpmPublic, TpmScheme, TpmSymmetric } from './tpm-public.js';
export { parseTpmsAttest } from './tpms-attest.js';
export type { PcrBankSelection, TpmsAttest } from './tpms-attest.js';
export { ecdsaSignatureToDer, parseTpmtSignatureEcdsa } from './tpmt-signature.js';
export type { TpmEcdsaSignature } from './tpmt-signature.js';
export { checkAttestationKey, checkDeviceKey } from './key-policy.js';
export type { KeyCheckResult } from './key-policy.js';
export type { AttestationKeyInput } from './signed-attest.js';
export { verifyQuote } from './quote.js';
export type { TpmCounters, VerifiedQuote, VerifyQuoteInput } from './quote.js';
export { verifyCertify } from './certify.js';
export type { VerifyCertifyInput } from './certify.js';
export { kdfa, kdfe, makeCredential } from './credential.js';
export type { MadeCredential, MakeCredentialInput } from './credential.js';
export { verifyEkCertificate } from './ek-certificate.js';
export type { CertificateInput, VerifiedEkCertificate, VerifyEkCertificateInput } from './ek-certificate.js';
export { evaluatePcrPolicy, releaseProofPcrs } from './pcr-policy.js';
export type { PcrMismatch, PcrPolicyInput, PcrPolicyResult } from './pcr-policy.js';
