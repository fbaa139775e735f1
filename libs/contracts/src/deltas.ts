import { z } from 'zod';
import { EXAMPLE } from './example-values.js';
import { deviceText } from './device-text.js';
import { HARDWARE_ID_PATTERN } from './releases.js';

/**
 * Delta builds (`/api/v1/deltas`) and bytes saved.
 *
 * POST /api/v1/deltas {hardware, from, to} (release-engineer) -> 202 DeltaBuildDto (idempotent: the same pair
 *   returns the existing build)
 * GET  /api/v1/deltas[?hardware=] (viewer) -> DeltaBuildListDto, newest first
 * POST /api/v1/devices/me/downloads DownloadReport (device token) -> 202
 * GET  /api/v1/savings[?hardware=] (viewer) -> SavingsDto
 */
export const DELTA_BUILD_STATES = [
  'queued',
  'building',
  'verifying',
  'published',
  'too-large',
  'failed',
] as const;
export type DeltaBuildState = (typeof DELTA_BUILD_STATES)[number];

const imageRef = z.object({ version: z.string(), sha256: z.string(), length: z.number() });

export const deltaBuildDtoSchema = z
  .object({
    id: z.string(),
    hardwareId: z.string(),
    from: imageRef,
    to: imageRef,
    state: z.enum(DELTA_BUILD_STATES),
    progress: z.number().meta({ description: '0-100' }),
    targetPath: z.string(),
    patchLength: z.number().nullable(),
    saving: z.number().nullable().meta({ description: '1 - patch / full image, when built.' }),
    buildSeconds: z.number().nullable(),
    peakRssBytes: z.number().nullable(),
    error: z.string().nullable(),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .meta({
    id: 'DeltaBuild',
    example: {
      id: EXAMPLE.deltaId,
      hardwareId: EXAMPLE.hardware,
      from: { version: EXAMPLE.fromVersion, sha256: EXAMPLE.fromSha256, length: 268435456 },
      to: { version: EXAMPLE.version, sha256: EXAMPLE.imageSha256, length: 268435456 },
      state: 'published',
      progress: 100,
      targetPath: 'deltas/rpi4/1.0.0-1.1.0.delta',
      patchLength: 18874368,
      saving: 0.93,
      buildSeconds: 41.7,
      peakRssBytes: 734003200,
      error: null,
      createdAt: EXAMPLE.at,
      updatedAt: EXAMPLE.later,
    },
  });
export type DeltaBuildDto = z.infer<typeof deltaBuildDtoSchema>;

export const deltaBuildListDtoSchema = z
  .object({ deltas: z.array(deltaBuildDtoSchema) })
  .meta({ id: 'DeltaBuildList', example: { deltas: [deltaBuildDtoSchema.meta()?.example] } });
export type DeltaBuildListDto = z.infer<typeof deltaBuildListDtoSchema>;

const version = z.string().min(1).max(64);

export const deltaRequestSchema = z
  .strictObject({
    hardware: z.string().regex(HARDWARE_ID_PATTERN, 'not a valid hardware id'),
    from: version,
    to: version,
  })
  .meta({ id: 'DeltaRequest', example: { hardware: 'rpi4', from: '1.0.0', to: '1.1.0' } });
export type DeltaRequest = z.infer<typeof deltaRequestSchema>;

const bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const downloadReportSchema = z
  .strictObject({
    targetPath: deviceText(512).min(1),
    method: z.enum(['delta', 'full']),
    bytesDownloaded: bytes,
    fullBytes: bytes,
  })
  .meta({
    id: 'DownloadReport',
    example: {
      targetPath: 'deltas/rpi4/1.0.0-1.1.0.delta',
      method: 'delta',
      bytesDownloaded: 18874368,
      fullBytes: 268435456,
    },
  });
export type DownloadReport = z.infer<typeof downloadReportSchema>;

const totals = {
  downloads: z.number(),
  bytesDownloaded: z.number(),
  fullBytes: z.number(),
  bytesSaved: z.number(),
};

export const savingsDtoSchema = z
  .object({
    releases: z.array(z.object({ hardwareId: z.string(), version: z.string(), ...totals })),
    nodes: z.array(z.object({ nodeId: z.string(), ...totals })),
  })
  .meta({
    id: 'Savings',
    example: {
      releases: [
        {
          hardwareId: EXAMPLE.hardware,
          version: EXAMPLE.version,
          downloads: 120,
          bytesDownloaded: 2264924160,
          fullBytes: 32212254720,
          bytesSaved: 29947330560,
        },
      ],
      nodes: [
        {
          nodeId: EXAMPLE.nodeId,
          downloads: 1,
          bytesDownloaded: 18874368,
          fullBytes: 268435456,
          bytesSaved: 249561088,
        },
      ],
    },
  });
export type SavingsDto = z.infer<typeof savingsDtoSchema>;

/** `?hardware=` of the delta and savings lists. */
export const hardwareQuerySchema = z.strictObject({
  hardware: z.string().regex(HARDWARE_ID_PATTERN, 'not a valid hardware id').optional(),
});
export type HardwareQuery = z.infer<typeof hardwareQuerySchema>;

/** TUF custom metadata of a published delta target `deltas/{hardware}/{from}-{to}.delta`. */
export interface DeltaTargetCustom {
  delta: {
    format: string;
    from: { version: string; sha256: string; length: number };
    to: { version: string; sha256: string; length: number };
  };
}
