import { z } from 'zod';

/** Management API roles, weakest first: each role can do everything the ones before it can. */
export const ROLES = ['viewer', 'release-engineer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Tokens travel as `Authorization: Bearer <token>`.
 * POST /api/v1/tokens {name, role} (admin) -> 201 CreatedTokenDto (the secret is shown once)
 * GET /api/v1/tokens (admin) -> TokenListDto; DELETE /api/v1/tokens/:id (admin) -> 204
 */
export const tokenDtoSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    createdAt: z.string(),
    revokedAt: z.string().nullable(),
  })
  .meta({ id: 'Token' });
export type TokenDto = z.infer<typeof tokenDtoSchema>;

export const createdTokenDtoSchema = tokenDtoSchema
  .extend({ token: z.string().meta({ description: 'The secret: shown once, never stored in clear.' }) })
  .meta({ id: 'CreatedToken' });
export type CreatedTokenDto = z.infer<typeof createdTokenDtoSchema>;

export const tokenListDtoSchema = z.object({ tokens: z.array(tokenDtoSchema) }).meta({ id: 'TokenList' });
export type TokenListDto = z.infer<typeof tokenListDtoSchema>;

/** POST /api/v1/tokens. Strict: a field the API does not know is refused, never silently dropped. */
export const createTokenRequestSchema = z
  .strictObject({ name: z.string(), role: z.enum(ROLES) })
  .meta({ id: 'CreateTokenRequest', example: { name: 'ci', role: 'release-engineer' } });
export type CreateTokenRequest = z.infer<typeof createTokenRequestSchema>;
