export { IdentityModule, IDENTITY_REDIS } from './identity.module.js';
export type { IdentityModuleOptions } from './identity.module.js';
export {
  DeviceCertificateAuthority,
  DEVICE_CA_SUBJECT,
  DEVICE_CA_KEY_FILE,
  DEVICE_CA_CERT_FILE,
} from './device-certificate-authority.js';
export type {
  DeviceCaEvent,
  DeviceCertificateAuthorityOptions,
  IssueDeviceCertificate,
  IssuedDeviceCertificate,
  VerifiedDeviceCertificate,
} from './device-certificate-authority.js';
export { DeviceTokenService } from './device-token.service.js';
export type {
  DeviceTokenServiceOptions,
  DeviceIdentityClaim,
  VerifiedDeviceAssertion,
  IssuedAccessToken,
  AccessTokenClaims,
} from './device-token.service.js';
export { DpopProofVerifier, jwkThumbprint } from './dpop-proof.js';
export type { DpopRequest, DpopProofVerifierOptions } from './dpop-proof.js';
export {
  loadOrCreateTokenSigningKey,
  tokenSigningKeyFrom,
  TOKEN_SIGNING_KEY_FILE,
} from './token-signing-key.js';
export type { TokenSigningKey } from './token-signing-key.js';
export {
  NODE_ID_PATTERN,
  DEVICE_AUTH_AUDIENCE,
  DEVICE_API_AUDIENCE,
  ACCESS_TOKEN_ISSUER,
  isNodeId,
} from './identity-names.js';
export { isP256PublicKey } from './p256.js';
