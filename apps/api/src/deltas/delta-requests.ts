import { z } from 'zod';
import { deviceText, HARDWARE_ID_PATTERN } from '#otter/contracts';

const version = z.string().min(1).max(64);

export const deltaRequest = z.strictObject({
  hardware: z.string().regex(HARDWARE_ID_PATTERN, 'not a valid hardware id'),
  from: version,
  to: version,
});

const bytes = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

export const downloadReport = z.strictObject({
  targetPath: deviceText(512).min(1),
  method: z.enum(['delta', 'full']),
  bytesDownloaded: bytes,
  fullBytes: bytes,
});
