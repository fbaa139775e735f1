import { z } from 'zod';

/** A TUF metadata file as served: a signed envelope the client verifies itself (the TUF specification). */
export const tufMetadataSchema = z
  .object({
    signatures: z.array(z.object({ keyid: z.string(), sig: z.string() })),
    signed: z.record(z.string(), z.unknown()),
  })
  .meta({
    id: 'TufMetadata',
    description: 'A signed TUF metadata file (root, targets, snapshot or timestamp).',
  });
