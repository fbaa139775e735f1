import { z } from 'zod';

/** A root as a ceremony uploads it: nothing in `signed` is trusted until the repository has checked it. */
export const rootEnvelope = z
  .object({
    signatures: z
      .array(
        z
          .object({ keyid: z.string().regex(/^[0-9a-f]{64}$/), sig: z.string().regex(/^[0-9a-f]+$/) })
          .strict(),
      )
      .max(64),
    signed: z.record(z.string(), z.unknown()),
  })
  .strict();
