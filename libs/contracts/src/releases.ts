import { z } from 'zod';
import { EXAMPLE } from './example-values.js';

/**
 * Release API contract, shared by the api, the CLI and tests.
 *
 * POST /api/v1/releases — multipart/form-data, role release-engineer. Text fields come first, the image
 * file field last (so the server can validate before it reads a single image byte):
 *   hardware      hardware id, /^[a-z0-9][a-z0-9._-]{0,63}$/
 *   version       semantic version (semver 2.0, no leading "v")
 *   measurements  optional JSON object: PCR index ("0".."23") -> sha256 hex (64 lowercase hex chars)
 *   notes         optional free text, at most 16 KiB
 *   image         the image bytes (any size up to OTTER_MAX_UPLOAD_BYTES)
 * Nothing else: a part after the image, a second file, an unknown or repeated field, or a malformed body
 * (no boundary, another boundary, no closing boundary) is a 400, never silently dropped.
 * 201 -> ReleaseDto; 409 RELEASE_DUPLICATE when hardware+version exists; 400 with a reason otherwise.
 *
 * GET /api/v1/releases[?hardware=ID] — role viewer -> ReleaseListDto, newest first.
 */
export const HARDWARE_ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,63}$/;
export const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;
export const MAX_NOTES_BYTES = 16 * 1024;

export const releaseDtoSchema = z
  .object({
    id: z.string(),
    hardwareId: z.string(),
    version: z.string(),
    targetPath: z.string(),
    sha256: z.string(),
    length: z.number(),
    measurements: z.record(z.string(), z.string()),
    notes: z.string(),
    createdAt: z.string(),
    createdBy: z.string(),
  })
  .meta({
    id: 'Release',
    example: {
      id: EXAMPLE.releaseId,
      hardwareId: EXAMPLE.hardware,
      version: EXAMPLE.version,
      targetPath: 'images/rpi4/1.1.0.img',
      sha256: EXAMPLE.imageSha256,
      length: 268435456,
      measurements: { '4': EXAMPLE.pcrSha256 },
      notes: 'kernel 6.6.21, fixes the watchdog reset',
      createdAt: EXAMPLE.at,
      createdBy: 'ci',
    },
  });
export type ReleaseDto = z.infer<typeof releaseDtoSchema>;

export const releaseListDtoSchema = z
  .object({ releases: z.array(releaseDtoSchema) })
  .meta({ id: 'ReleaseList', example: { releases: [releaseDtoSchema.meta()?.example] } });
export type ReleaseListDto = z.infer<typeof releaseListDtoSchema>;

/** The multipart form of POST /api/v1/releases, for the document only: the route reads it as a stream. */
export const releaseUploadFormSchema = z
  .object({
    hardware: z.string().regex(HARDWARE_ID_PATTERN),
    version: z.string().meta({ description: 'semantic version (semver 2.0, no leading "v")' }),
    measurements: z
      .string()
      .optional()
      .meta({ description: 'JSON object: PCR index ("0".."23") -> sha256 hex' }),
    notes: z.string().optional().meta({ description: 'free text, at most 16 KiB' }),
    image: z.string().meta({ format: 'binary', description: 'the image bytes, last part' }),
  })
  .meta({ id: 'ReleaseUpload' });
