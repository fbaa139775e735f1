import { z } from 'zod';
import {
  DEVICE_REPORT_LIMITS,
  deviceText,
  HARDWARE_ID_PATTERN,
  type AllowEnrollmentRequest,
} from '#otter/contracts';

const base64 = (max: number) =>
  z
    .string()
    .max(max)
    .regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const hex64 = z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex characters');
const version = z
  .string()
  .regex(/^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]{1,64})?$/, 'must be a semantic version')
  .max(80);

const pcrValues = z
  .record(
    z.string().regex(/^(?:[0-9]|1[0-9]|2[0-3])$/, 'PCR index must be 0-23'),
    z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be sha256 hex'),
  )
  .refine((v) => Object.keys(v).length > 0 && Object.keys(v).length <= 24, 'between 1 and 24 PCRs');

const quote = z.strictObject({ attest: base64(4096), signature: base64(1024), pcrValues });

export const enrollmentRequest = z.strictObject({
  hardwareId: z.string().regex(HARDWARE_ID_PATTERN, 'not a valid hardware id'),
  ekKind: z.enum(['rsa', 'ecc']),
  ekCertificate: base64(16_384),
  ekPublic: base64(2048),
  akPublic: base64(2048),
  runningVersion: version.optional(),
});

export const activationRequest = z.strictObject({ secret: base64(256), quote });

export const identityRequest = z.strictObject({
  devicePublic: base64(2048),
  certifyAttest: base64(4096),
  certifySignature: base64(1024),
  assertion: z.string().max(4096),
});

export const tokenRequest = z.strictObject({ assertion: z.string().max(4096) });

export const challengeRequest = z.strictObject({ runningVersion: version.optional() });

export const attestationRequest = z.strictObject({ nonce: hex64, quote, runningVersion: version.optional() });

export const deviceReport = z.strictObject({
  kind: z.enum(['health', 'integrity']),
  ok: z.boolean(),
  event: deviceText(DEVICE_REPORT_LIMITS.event).min(1),
  detail: deviceText(DEVICE_REPORT_LIMITS.detail).optional(),
  at: z.iso.datetime(),
});

const note = z.string().max(500).default('');

/** An EK certificate serial in hex, with or without colons (as certificate viewers print it). */
const serialHex = z
  .string()
  .max(128)
  .regex(/^[0-9a-fA-F]+(?::[0-9a-fA-F]+)*$/, 'hex, e.g. 0a1b2c or 0A:1B:2C');

export const allowRequest: z.ZodType<AllowEnrollmentRequest> = z.discriminatedUnion(
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
);
