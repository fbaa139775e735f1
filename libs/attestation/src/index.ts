export { AttestationError } from './attestation-error.js';
export type { AttestationErrorCode } from './attestation-error.js';
export {
  parseTpm2bPublic,
  parseTpmsAttest,
  parseTpmtPublic,
  parseTpmtSignatureEcdsa,
  publicKeyObject,
  tpmObjectName,
} from './tpm-wire.js';
export type { TpmPublic } from './tpm-wire.js';
export { checkAttestationKey, checkDeviceKey, checkEndorsementKey } from './key-policy.js';
export type { KeyCheckResult } from './key-policy.js';
export type { AttestationKeyInput } from './signed-attest.js';
export { verifyQuote } from './quote.js';
export type { TpmCounters, VerifiedQuote, VerifyQuoteInput } from './quote.js';
export { verifyCertify } from './certify.js';
export type { VerifyCertifyInput } from './certify.js';
export { kdfa, kdfe, makeCredential } from './credential.js';
export type { MadeCredential, MakeCredentialInput } from './credential.js';
export { issuerSerialSha256, verifyEkCertificate } from './ek-certificate.js';
export type { CertificateInput, VerifiedEkCertificate, VerifyEkCertificateInput } from './ek-certificate.js';
export { evaluatePcrPolicy, releaseProofPcrs } from './pcr-policy.js';
export type { PcrMismatch, PcrPolicyInput, PcrPolicyResult } from './pcr-policy.js';
