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

export interface DeltaBuildDto {
  id: string;
  hardwareId: string;
  from: { version: string; sha256: string; length: number };
  to: { version: string; sha256: string; length: number };
  state: DeltaBuildState;
  /** 0-100 */
  progress: number;
  targetPath: string;
  patchLength: number | null;
  /** 1 - patch / full image, when built. */
  saving: number | null;
  buildSeconds: number | null;
  peakRssBytes: number | null;
  error: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface DeltaBuildListDto {
  deltas: DeltaBuildDto[];
}

export interface DeltaRequest {
  hardware: string;
  from: string;
  to: string;
}

export interface DownloadReport {
  targetPath: string;
  method: 'delta' | 'full';
  bytesDownloaded: number;
  fullBytes: number;
}

export interface SavingsDto {
  releases: Array<{
    hardwareId: string;
    version: string;
    downloads: number;
    bytesDownloaded: number;
    fullBytes: number;
    bytesSaved: number;
  }>;
  nodes: Array<{
    nodeId: string;
    downloads: number;
    bytesDownloaded: number;
    fullBytes: number;
    bytesSaved: number;
  }>;
}

/** TUF custom metadata of a published delta target `deltas/{hardware}/{from}-{to}.delta`. */
export interface DeltaTargetCustom {
  delta: {
    format: string;
    from: { version: string; sha256: string; length: number };
    to: { version: string; sha256: string; length: number };
  };
}
