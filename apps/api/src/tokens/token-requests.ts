import { z } from 'zod';
import { ROLES } from '#otter/contracts';

/** POST /api/v1/tokens. Strict: a field the API does not know is refused, never silently dropped. */
export const createTokenRequest = z.strictObject({
  name: z.string(),
  role: z.enum(ROLES),
});
export type CreateTokenRequest = z.infer<typeof createTokenRequest>;

export { parseBody, requireJson } from '../common/request-body.js';
