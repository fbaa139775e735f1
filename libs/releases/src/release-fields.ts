import semver from 'semver';
import { z } from 'zod';
import {
  HARDWARE_ID_PATTERN,
  MAX_NOTES_BYTES,
  parseUntrustedJson,
  SHA256_HEX_PATTERN,
  UntrustedJsonError,
} from '#otter/contracts';
import { ReleaseError } from './release.errors.js';

const PCR_INDEX = /^(?:[0-9]|1[0-9]|2[0-3])$/;

const measurements = z
  .record(
    z.string(),
    z.string().regex(SHA256_HEX_PATTERN, 'PCR value must be 64 lowercase hex characters (sha256)'),
  )
  .superRefine((m, ctx) => {
    for (const index of Object.keys(m)) {
      if (!PCR_INDEX.test(index))
        ctx.addIssue({ code: 'custom', path: [index], message: 'PCR index must be 0-23' });
    }
  });

export const releaseFieldsSchema = z
  .object({
    hardware: z.string().regex(HARDWARE_ID_PATTERN, 'hardware id must match ' + HARDWARE_ID_PATTERN.source),
    version: z
      .string()
      .max(64)
      .refine(
        (v) => semver.valid(v) === v,
        'version must be a semantic version such as 2.4.0 (no leading v)',
      ),
    measurements: measurements.default({}),
    notes: z
      .string()
      .refine(
        (n) => Buffer.byteLength(n) <= MAX_NOTES_BYTES,
        `notes must be at most ${MAX_NOTES_BYTES} bytes`,
      )
      .default(''),
  })
  .strict();

export type ReleaseFields = z.infer<typeof releaseFieldsSchema>;

/** Validates the text fields of a release upload; `measurements` arrives as a JSON string. */
export function parseReleaseFields(raw: Record<string, string>): ReleaseFields {
  let measurementsValue: unknown = undefined;
  if (raw.measurements !== undefined && raw.measurements !== '') {
    // Not JSON.parse: a `__proto__` key would be dropped by the schema below and the rest signed as if
    // that were what was sent.
    try {
      measurementsValue = parseUntrustedJson(raw.measurements);
    } catch (e) {
      const reason = e instanceof UntrustedJsonError ? e.message : 'not valid JSON';
      throw new ReleaseError(
        'RELEASE_INVALID',
        `measurements: must be a JSON object of PCR index to sha256 hex: ${reason}`,
        { field: 'measurements', reason },
      );
    }
  }
  const parsed = releaseFieldsSchema.safeParse({ ...raw, measurements: measurementsValue });
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || String((issue as { keys?: string[] }).keys?.[0] ?? 'body');
    throw new ReleaseError('RELEASE_INVALID', `${field}: ${issue.message}`, {
      field,
      issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    });
  }
  return parsed.data;
}

export function targetPathOf(hardware: string, version: string): string {
  return `images/${hardware}/${version}`;
}
