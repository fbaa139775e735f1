/**
 * Device (node) API contract: enrollment, identity, attestation and reports. Binary TPM structures travel as
 * base64 of the exact bytes tpm2-tools writes (TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE, credential blob).
 *
 * 1. POST /api/v1/devices/enrollments                  EnrollmentRequest -> 201 EnrollmentChallenge
 * 2. POST /api/v1/devices/enrollments/:id/activation    ActivationRequest -> 200 ActivationResult
 *    The AK is trusted only after the node proves, by decrypting the credential, that it lives in the same
 *    TPM as the certified EK; the quote in this request pins the firmware/boot PCRs.
 * 3. POST /api/v1/devices/:nodeId/identity              IdentityRequest (AK-certified device key) -> 201 IdentityResult
 * 4. POST /api/v1/devices/token                          { assertion } (ES256 JWT signed in the TPM) -> 200 AccessTokenDto
 *    Steps 5-7 take `Authorization: Bearer <access token>` and act on the caller's own node only.
 * 5. POST /api/v1/devices/me/attestation/challenge       -> 201 AttestationChallenge
 * 6. POST /api/v1/devices/me/attestation                 AttestationRequest -> 200 VerdictDto
 * 7. POST /api/v1/devices/me/reports                     DeviceReport -> 202
 */
export interface EnrollmentRequest {
  hardwareId: string;
  ekKind: 'rsa' | 'ecc';
  /** DER, base64. */
  ekCertificate: string;
  /** TPM2B_PUBLIC, base64. */
  ekPublic: string;
  /** TPM2B_PUBLIC, base64. */
  akPublic: string;
  /** Release the node runs now: a version of images/{hardwareId}/*. */
  runningVersion?: string;
}

export interface EnrollmentChallenge {
  enrollmentId: string;
  /** tpm2-tools credential blob for tpm2_activatecredential, base64. */
  credentialBlob: string;
  /** Quote nonce for the activation request, hex. */
  nonce: string;
  /** PCRs the activation quote must cover. */
  pcrs: number[];
  expiresAt: string;
}

export interface TpmQuote {
  /** TPMS_ATTEST, base64. */
  attest: string;
  /** TPMT_SIGNATURE, base64. */
  signature: string;
  /** PCR index -> sha256 hex, as read when quoting. */
  pcrValues: Record<string, string>;
}

export interface ActivationRequest {
  /** The decrypted credential, base64. */
  secret: string;
  quote: TpmQuote;
}

export type NodeIdentityState = 'pending-approval' | 'approved' | 'active' | 'rejected' | 'revoked';

export interface ActivationResult {
  nodeId: string;
  state: NodeIdentityState;
}

export interface IdentityRequest {
  /** TPM2B_PUBLIC of the device signing key, base64. */
  devicePublic: string;
  /** TPM2_Certify of the device key by the AK: TPMS_ATTEST and TPMT_SIGNATURE, base64. */
  certifyAttest: string;
  certifySignature: string;
  /** ES256 JWT signed with the device key (iss = sub = nodeId, aud = otter:device-auth): proof of possession. */
  assertion: string;
}

export interface IdentityResult {
  nodeId: string;
  certificate: string;
  notAfter: string;
}

/**
 * `details.reason` of the 401 a token exchange (step 4) gets once the node's device certificate has expired.
 * The node is still admitted: it gets a new certificate by proving its AK again (step 3), then exchanges again.
 */
export const DEVICE_CERTIFICATE_EXPIRED = 'device_certificate_expired';

export interface AccessTokenDto {
  accessToken: string;
  expiresAt: string;
}

export interface AttestationChallenge {
  nonce: string;
  pcrs: number[];
  expiresAt: string;
}

export interface AttestationRequest {
  nonce: string;
  quote: TpmQuote;
  /** Release the node says it booted: its quote must match that release's signed reference measurements. */
  runningVersion?: string;
}

export interface VerdictDto {
  nodeId: string;
  passed: boolean;
  reason: string;
  pcrValues: Record<string, string>;
  releaseVersion: string | null;
  /**
   * The quote matched releaseVersion's signed reference measurements of PCRs beyond the pinned ones: proof that
   * release booted (what a rollout counts as success). False when only the pinned boot state was checked.
   */
  releaseProven: boolean;
  createdAt: string;
}

export interface DeviceReport {
  kind: 'health' | 'integrity';
  ok: boolean;
  /** At most DEVICE_REPORT_LIMITS.event characters. */
  event: string;
  /** At most DEVICE_REPORT_LIMITS.detail characters. */
  detail?: string;
  at: string;
}

/**
 * The longest text a node may put in a DeviceReport. Longer is refused (400), never cut: what is stored is
 * what was sent. Operators read these strings back, so the CLI prints them with control characters escaped.
 */
export const DEVICE_REPORT_LIMITS = { event: 200, detail: 4096 } as const;

/** Operator view (GET /api/v1/nodes). */
export interface NodeDto {
  id: string;
  hardwareId: string;
  state: NodeIdentityState;
  runningVersion: string | null;
  lastVerdict: { passed: boolean; reason: string; at: string; ageSeconds: number } | null;
  /** What rollout selectors match on (`docs/rollouts.md`). */
  labels: Record<string, string>;
  createdAt: string;
  /** The node's last authenticated device request, to about five minutes; null if it never made one. */
  lastSeenAt: string | null;
}

/** A page of GET /api/v1/nodes (see node-story.ts for its query). */
export interface NodeListDto {
  nodes: NodeDto[];
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: string | null;
}

/**
 * How an operator pre-approves a TPM's enrollment (POST /api/v1/enrollment-allowlist, admin): by its EK
 * certificate's issuer and serial (a serial alone names nothing: another CA may issue the same one), or by the
 * sha256 of its exact EK public area. Never auto-approves a TPM some node already holds.
 */
export const ENROLLMENT_ALLOW_KINDS = ['ek-issuer-serial', 'ek-public-sha256'] as const;
export type EnrollmentAllowKind = (typeof ENROLLMENT_ALLOW_KINDS)[number];

export type AllowEnrollmentRequest =
  | { kind: 'ek-issuer-serial'; issuer: string; serial: string; note?: string }
  | { kind: 'ek-public-sha256'; value: string; note?: string };

/**
 * POST /api/v1/nodes/:id/re-enroll (admin): a re-imaged board may enroll again with the same TPM, once, into
 * this node, until `reenrollUntil`.
 */
export interface ReenrollmentDto {
  node: NodeDto;
  reenrollUntil: string;
}

/** A label key or value: what `PUT /api/v1/nodes/:id/labels` accepts and rollout selectors match. */
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
export const MAX_NODE_LABELS = 32;

/** PUT /api/v1/nodes/:id/labels (release-engineer): replaces the node's whole label set. */
export interface SetNodeLabelsRequest {
  labels: Record<string, string>;
}
