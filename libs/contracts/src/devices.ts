import { z } from 'zod';
import { EXAMPLE } from './example-values.js';
import { deviceText } from './device-text.js';
import { HARDWARE_ID_PATTERN } from './releases.js';

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

const base64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
const semver = z
  .string()
  .regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]{1,64})?$/, 'must be a semantic version')
  .max(80);

const pcrValues = z
  .record(
    z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, 'PCR index must be 0-23'),
    z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be sha256 hex'),
  )
  .refine((v) => Object.keys(v).length > 0 && Object.keys(v).length <= 24, 'between 1 and 24 PCRs')
  .meta({ description: 'PCR index -> sha256 hex, as read when quoting.' });

export const tpmQuoteSchema = z
  .strictObject({
    attest: base64(4096).meta({ description: 'TPMS_ATTEST, base64.' }),
    signature: base64(1024).meta({ description: 'TPMT_SIGNATURE, base64.' }),
    pcrValues,
  })
  .meta({
    id: 'TpmQuote',
    example: {
      attest:
        '/1RDR4AYACIAC8sPl2Xyq1NbUTGaX3U1ZskKf7qUsNIzSvGqpWh3A4YbAAAAAAAAAAAAAGUJVOEAAAAAAAAAAAAAAQAAAAEACwMAAAEAIHqJ5EpjOa1ggTtRL5R3cU1KPiqm4rRg/5gqTg2vTf2F',
      signature:
        'ABgACwAgrq8ap0hG0cJxvbBQzy8+H6MqYQyA64X5tgDq0lLr7BIAIBhsGKr3l6f8k0e6qzvNoGtRbPnlv9q7Zs1x5Ly7Je3C',
      pcrValues: { '0': EXAMPLE.pcrSha256, '7': EXAMPLE.imageSha256 },
    },
  });
export type TpmQuote = z.infer<typeof tpmQuoteSchema>;

export const enrollmentRequestSchema = z
  .strictObject({
    hardwareId: z.string().regex(HARDWARE_ID_PATTERN, 'not a valid hardware id'),
    ekKind: z.enum(['rsa', 'ecc']),
    ekCertificate: base64(16_384).meta({ description: 'DER, base64.' }),
    ekPublic: base64(2048).meta({ description: 'TPM2B_PUBLIC, base64.' }),
    akPublic: base64(2048).meta({ description: 'TPM2B_PUBLIC, base64.' }),
    runningVersion: semver
      .optional()
      .meta({ description: 'Release the node runs now: a version of images/{hardwareId}/*.' }),
  })
  .meta({
    id: 'EnrollmentRequest',
    example: {
      hardwareId: EXAMPLE.hardware,
      ekKind: 'rsa',
      ekCertificate: 'MIIDmjCCAoKgAwIBAgIEQ2F0AjANBgkqhkiG9w0BAQsFADBV',
      ekPublic: 'AToAAQALAAMAsgAgg3GXZ0SEs/gakMyNRqXXJP1S124GUgtk8qHaGzMUaaoABgCAAEMAEAgAAAAAAAEA',
      akPublic: 'AFYAIwALAAUAcgAAABAAGAALAAMAEAAgpI9P8J0N2xS7y0q8fW+6H6wqQ1N9vK3bX4m2g9a5pXsAIH7/',
      runningVersion: EXAMPLE.fromVersion,
    },
  });
export type EnrollmentRequest = z.infer<typeof enrollmentRequestSchema>;

export const enrollmentChallengeSchema = z
  .object({
    enrollmentId: z.string(),
    credentialBlob: z.string().meta({ description: 'tpm2-tools credential blob, base64.' }),
    nonce: z.string().meta({ description: 'Quote nonce for the activation request, hex.' }),
    pcrs: z.array(z.number()).meta({ description: 'PCRs the activation quote must cover.' }),
    expiresAt: z.string(),
  })
  .meta({
    id: 'EnrollmentChallenge',
    example: {
      enrollmentId: EXAMPLE.enrollmentId,
      credentialBlob: 'ACAAAQALACDd8wKj1Tj0NfNQ1fG6yQ3pD6t1uO2Sx+3M9jq6rXb4pA==',
      nonce: 'a3f1c2d4e5b60718293a4b5c6d7e8f90112233445566778899aabbccddeeff00',
      pcrs: [0, 1, 2, 3, 4, 7],
      expiresAt: EXAMPLE.expires,
    },
  });
export type EnrollmentChallenge = z.infer<typeof enrollmentChallengeSchema>;

export const activationRequestSchema = z
  .strictObject({
    secret: base64(256).meta({ description: 'The decrypted credential.' }),
    quote: tpmQuoteSchema,
  })
  .meta({
    id: 'ActivationRequest',
    example: {
      secret: 'q2V7cC1vbmUtdGltZS1zZWNyZXQtMzJieXRlcyE=',
      quote: {
        attest:
          '/1RDR4AYACIAC8sPl2Xyq1NbUTGaX3U1ZskKf7qUsNIzSvGqpWh3A4YbAAAAAAAAAAAAAGUJVOEAAAAAAAAAAAAAAQAAAAEACwMAAAEAIHqJ5EpjOa1ggTtRL5R3cU1KPiqm4rRg/5gqTg2vTf2F',
        signature:
          'ABgACwAgrq8ap0hG0cJxvbBQzy8+H6MqYQyA64X5tgDq0lLr7BIAIBhsGKr3l6f8k0e6qzvNoGtRbPnlv9q7Zs1x5Ly7Je3C',
        pcrValues: { '0': EXAMPLE.pcrSha256, '7': EXAMPLE.imageSha256 },
      },
    },
  });
export type ActivationRequest = z.infer<typeof activationRequestSchema>;

export const NODE_IDENTITY_STATES = [
  'pending-approval',
  'approved',
  'active',
  'rejected',
  'revoked',
] as const;
export type NodeIdentityState = (typeof NODE_IDENTITY_STATES)[number];

export const activationResultSchema = z
  .object({ nodeId: z.string(), state: z.enum(NODE_IDENTITY_STATES) })
  .meta({ id: 'ActivationResult', example: { nodeId: EXAMPLE.nodeId, state: 'pending-approval' } });
export type ActivationResult = z.infer<typeof activationResultSchema>;

export const identityRequestSchema = z
  .strictObject({
    devicePublic: base64(2048).meta({ description: 'TPM2B_PUBLIC of the device signing key, base64.' }),
    certifyAttest: base64(4096).meta({
      description: 'TPM2_Certify of the device key by the AK: TPMS_ATTEST.',
    }),
    certifySignature: base64(1024),
    assertion: z.string().max(4096).meta({
      description: 'ES256 JWT signed with the device key (iss = sub = nodeId, aud = otter:device-auth).',
    }),
  })
  .meta({
    id: 'IdentityRequest',
    example: {
      devicePublic: 'AFgAIwALAAQAcgAAABAAGAALAAMAEAAg1Jc0pWq1rE8yK9H3x2Lf0m4T7o8Zb6Y5nR2dQ1gV3vQAIC8+',
      certifyAttest: '/1RDR4AXACIAC8sPl2Xyq1NbUTGaX3U1ZskKf7qUsNIzSvGqpWh3A4YbACBhM2YxYzJkNGU1',
      certifySignature: 'ABgACwAgrq8ap0hG0cJxvbBQzy8+H6MqYQyA64X5tgDq0lLr7BI=',
      assertion: 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiIzZjJiOGMxZSJ9.MEUCIQDx',
    },
  });
export type IdentityRequest = z.infer<typeof identityRequestSchema>;

export const identityResultSchema = z
  .object({ nodeId: z.string(), certificate: z.string(), notAfter: z.string() })
  .meta({
    id: 'IdentityResult',
    example: {
      nodeId: EXAMPLE.nodeId,
      certificate:
        '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUK1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8wCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n',
      notAfter: '2026-06-12T09:26:53.000Z',
    },
  });
export type IdentityResult = z.infer<typeof identityResultSchema>;

export const tokenRequestSchema = z.strictObject({ assertion: z.string().max(4096) }).meta({
  id: 'DeviceTokenRequest',
  example: {
    assertion:
      'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiIzZjJiOGMxZS05YTRkLTRlN2ItOGMyMS01ZDZmMGExYjJjM2QiLCJhdWQiOiJvdHRlcjpkZXZpY2UtYXV0aCJ9.MEUCIQDx7Yb2',
  },
});

/**
 * `details.reason` of the 401 a token exchange (step 4) gets once the node's device certificate has expired.
 * The node is still admitted: it gets a new certificate by proving its AK again (step 3), then exchanges again.
 */
export const DEVICE_CERTIFICATE_EXPIRED = 'device_certificate_expired';

export const accessTokenDtoSchema = z.object({ accessToken: z.string(), expiresAt: z.string() }).meta({
  id: 'AccessToken',
  example: {
    accessToken:
      'eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiIzZjJiOGMxZSIsImNuZiI6eyJqa3QiOiJxM1cifX0.sig',
    expiresAt: EXAMPLE.later,
  },
});
export type AccessTokenDto = z.infer<typeof accessTokenDtoSchema>;

export const challengeRequestSchema = z
  .strictObject({ runningVersion: semver.optional() })
  .meta({ id: 'AttestationChallengeRequest', example: { runningVersion: EXAMPLE.version } });

export const attestationChallengeSchema = z
  .object({ nonce: z.string(), pcrs: z.array(z.number()), expiresAt: z.string() })
  .meta({
    id: 'AttestationChallenge',
    example: {
      nonce: 'b7e23ec29af22b0b4e41da31e868d57226121c84b9f2b1bb4b3c4d5e6f708192',
      pcrs: [0, 1, 2, 3, 4, 7, 8, 9],
      expiresAt: EXAMPLE.expires,
    },
  });
export type AttestationChallenge = z.infer<typeof attestationChallengeSchema>;

export const attestationRequestSchema = z
  .strictObject({
    nonce: hex64,
    quote: tpmQuoteSchema,
    runningVersion: semver.optional().meta({
      description:
        "Release the node says it booted: its quote must match that release's reference measurements.",
    }),
  })
  .meta({
    id: 'AttestationRequest',
    example: {
      nonce: 'b7e23ec29af22b0b4e41da31e868d57226121c84b9f2b1bb4b3c4d5e6f708192',
      quote: {
        attest:
          '/1RDR4AYACIAC8sPl2Xyq1NbUTGaX3U1ZskKf7qUsNIzSvGqpWh3A4YbAAAAAAAAAAAAAGUJVOEAAAAAAAAAAAAAAQAAAAEACwMAAAEAIHqJ5EpjOa1ggTtRL5R3cU1KPiqm4rRg/5gqTg2vTf2F',
        signature:
          'ABgACwAgrq8ap0hG0cJxvbBQzy8+H6MqYQyA64X5tgDq0lLr7BIAIBhsGKr3l6f8k0e6qzvNoGtRbPnlv9q7Zs1x5Ly7Je3C',
        pcrValues: { '0': EXAMPLE.pcrSha256, '7': EXAMPLE.imageSha256 },
      },
      runningVersion: EXAMPLE.version,
    },
  });
export type AttestationRequest = z.infer<typeof attestationRequestSchema>;

export const verdictDtoSchema = z
  .object({
    nodeId: z.string(),
    passed: z.boolean(),
    reason: z.string(),
    pcrValues: z.record(z.string(), z.string()),
    releaseVersion: z.string().nullable(),
    /**
     * The quote matched releaseVersion's signed reference measurements of PCRs beyond the pinned ones: proof that
     * release booted (what a rollout counts as success). False when only the pinned boot state was checked.
     */
    releaseProven: z.boolean(),
    createdAt: z.string(),
  })
  .meta({
    id: 'Verdict',
    example: {
      nodeId: EXAMPLE.nodeId,
      passed: true,
      reason: 'quote matches the pinned PCRs and the release reference measurements',
      pcrValues: { '0': EXAMPLE.pcrSha256, '7': EXAMPLE.imageSha256 },
      releaseVersion: EXAMPLE.version,
      releaseProven: true,
      createdAt: EXAMPLE.at,
    },
  });
export type VerdictDto = z.infer<typeof verdictDtoSchema>;

/**
 * The longest text a node may put in a DeviceReport. Longer is refused (400), never cut: what is stored is
 * what was sent. Operators read these strings back, so the CLI prints them with control characters escaped.
 */
export const DEVICE_REPORT_LIMITS = { event: 200, detail: 4096 } as const;

export const deviceReportSchema = z
  .strictObject({
    kind: z.enum(['health', 'integrity']),
    ok: z.boolean(),
    event: deviceText(DEVICE_REPORT_LIMITS.event).min(1),
    detail: deviceText(DEVICE_REPORT_LIMITS.detail).optional(),
    at: z.iso.datetime(),
  })
  .meta({
    id: 'DeviceReport',
    example: {
      kind: 'health',
      ok: true,
      event: 'watchdog',
      detail: 'all services up after boot',
      at: EXAMPLE.at,
    },
  });
export type DeviceReport = z.infer<typeof deviceReportSchema>;

/** Operator view (GET /api/v1/nodes). */
export const nodeDtoSchema = z
  .object({
    id: z.string(),
    hardwareId: z.string(),
    state: z.enum(NODE_IDENTITY_STATES),
    runningVersion: z.string().nullable(),
    lastVerdict: z
      .object({ passed: z.boolean(), reason: z.string(), at: z.string(), ageSeconds: z.number() })
      .nullable(),
    /** What rollout selectors match on (`docs/rollouts.md`). */
    labels: z.record(z.string(), z.string()),
    createdAt: z.string(),
    /** The node's last authenticated device request, to about five minutes; null if it never made one. */
    lastSeenAt: z.string().nullable(),
  })
  .meta({
    id: 'Node',
    example: {
      id: EXAMPLE.nodeId,
      hardwareId: EXAMPLE.hardware,
      state: 'active',
      runningVersion: EXAMPLE.version,
      lastVerdict: { passed: true, reason: 'quote matches the pinned PCRs', at: EXAMPLE.at, ageSeconds: 842 },
      labels: { site: 'berlin', ring: 'canary' },
      createdAt: '2026-02-01T12:00:00.000Z',
      lastSeenAt: EXAMPLE.later,
    },
  });
export type NodeDto = z.infer<typeof nodeDtoSchema>;

/**
 * How an operator pre-approves a TPM's enrollment (POST /api/v1/enrollment-allowlist, admin): by its EK
 * certificate's issuer and serial (a serial alone names nothing: another CA may issue the same one), or by the
 * sha256 of its exact EK public area. Never auto-approves a TPM some node already holds.
 */
export const ENROLLMENT_ALLOW_KINDS = ['ek-issuer-serial', 'ek-public-sha256'] as const;
export type EnrollmentAllowKind = (typeof ENROLLMENT_ALLOW_KINDS)[number];

const note = z.string().max(500).default('');

/** An EK certificate serial in hex, with or without colons (as certificate viewers print it). */
const serialHex = z
  .string()
  .max(128)
  .regex(/^[0-9a-fA-F]+(?::[0-9a-fA-F]+)*$/, 'hex, e.g. 0a1b2c or 0A:1B:2C');

export const allowEnrollmentRequestSchema = z
  .discriminatedUnion(
    'kind',
    [
      z.strictObject({
        kind: z.literal('ek-issuer-serial'),
        issuer: z.string().min(3).max(1024),
        serial: serialHex,
        note,
      }),
      z.strictObject({
        kind: z.literal('ek-public-sha256'),
        value: z.string().regex(/^[0-9a-fA-F]{64}$/, '64 hex characters (sha256)'),
        note,
      }),
    ],
    { error: 'kind must be ek-issuer-serial (with issuer and serial) or ek-public-sha256 (with value)' },
  )
  .meta({
    id: 'AllowEnrollmentRequest',
    example: {
      kind: 'ek-issuer-serial',
      issuer: 'CN=Infineon OPTIGA(TM) RSA Manufacturing CA 003,O=Infineon Technologies AG,C=DE',
      serial: '43:61:74:02',
      note: 'batch 2026-03 from the Berlin line',
    },
  });
export type AllowEnrollmentRequest = z.input<typeof allowEnrollmentRequestSchema>;

/**
 * POST /api/v1/nodes/:id/re-enroll (admin): a re-imaged board may enroll again with the same TPM, once, into
 * this node, until `reenrollUntil`.
 */
export const reenrollmentDtoSchema = z.object({ node: nodeDtoSchema, reenrollUntil: z.string() }).meta({
  id: 'Reenrollment',
  example: { node: nodeDtoSchema.meta()?.example, reenrollUntil: '2026-03-15T09:26:53.000Z' },
});
export type ReenrollmentDto = z.infer<typeof reenrollmentDtoSchema>;

/** A label key or value: what `PUT /api/v1/nodes/:id/labels` accepts and rollout selectors match. */
export const LABEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$/;
export const MAX_NODE_LABELS = 32;
const LABEL_RULE = '[A-Za-z0-9] then [A-Za-z0-9._/-], 1..63 characters';

/** PUT /api/v1/nodes/:id/labels (release-engineer): replaces the node's whole label set. */
// Keys are checked here rather than as the record's key schema: zod would only say "Invalid key in record".
export const setNodeLabelsRequestSchema = z
  .strictObject({
    labels: z
      .record(z.string(), z.string().regex(LABEL_PATTERN, `a label value: ${LABEL_RULE}`))
      .superRefine((labels, ctx) => {
        const keys = Object.keys(labels);
        for (const key of keys) {
          if (!LABEL_PATTERN.test(key))
            ctx.addIssue({ code: 'custom', path: [key], message: `a label key: ${LABEL_RULE}` });
        }
        if (keys.length > MAX_NODE_LABELS) {
          ctx.addIssue({ code: 'custom', message: `at most ${MAX_NODE_LABELS} labels (got ${keys.length})` });
        }
      }),
  })
  .meta({ id: 'SetNodeLabelsRequest', example: { labels: { site: 'berlin', ring: 'canary' } } });
export type SetNodeLabelsRequest = z.infer<typeof setNodeLabelsRequestSchema>;

/** An id in a path (node, rollout, enrollment): a UUID in its usual 8-4-4-4-12 hex form. */
export const uuidParamSchema = z.guid({ error: 'must be a UUID' });
