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
    example: {
      signatures: [
        {
          keyid: '4e1243bd22c66e76c2ba9eddc1f91394e57f9f83d5ea4f3e2c8d0a7b6c5d4e3f',
          sig: 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90',
        },
      ],
      signed: {
        _type: 'timestamp',
        spec_version: '1.0.31',
        version: 1042,
        expires: '2026-03-15T09:26:53Z',
        meta: { 'snapshot.json': { version: 1042 } },
      },
    },
  });
