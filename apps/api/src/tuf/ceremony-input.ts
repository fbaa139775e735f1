import { z } from 'zod';
import { ValidationError } from '#otter/errors';
import { ONLINE_ROLES, type OnlineRole } from '#otter/tuf-signing';

/**
 * What the root ceremony's server side (image and director alike) accepts. A root as a ceremony uploads it:
 * nothing in `signed` is trusted until the repository has checked it.
 */
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

/** The `:role` of an online key rotation. */
export function onlineRoleParam(role: string): OnlineRole {
  const found = ONLINE_ROLES.find((r) => r === role);
  if (!found) throw new ValidationError(`role must be one of ${ONLINE_ROLES.join(', ')}`);
  return found;
}
