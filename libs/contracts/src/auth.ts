import { z } from 'zod';
import { EXAMPLE } from './example-values.js';

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
  .meta({
    id: 'Token',
    example: {
      id: EXAMPLE.tokenId,
      name: 'ci',
      role: 'release-engineer',
      createdAt: EXAMPLE.at,
      revokedAt: null,
    },
  });
export type TokenDto = z.infer<typeof tokenDtoSchema>;

export const createdTokenDtoSchema = tokenDtoSchema
  .extend({ token: z.string().meta({ description: 'The secret: shown once, never stored in clear.' }) })
  .meta({
    id: 'CreatedToken',
    example: {
      id: EXAMPLE.tokenId,
      name: 'ci',
      role: 'release-engineer',
      createdAt: EXAMPLE.at,
      revokedAt: null,
      token: 'otr_6Jq2vX9pL4mN8sT1wY5zB3cF7hK0dG2a',
    },
  });
export type CreatedTokenDto = z.infer<typeof createdTokenDtoSchema>;

export const tokenListDtoSchema = z.object({ tokens: z.array(tokenDtoSchema) }).meta({
  id: 'TokenList',
  example: {
    tokens: [
      tokenDtoSchema.meta()?.example,
      {
        id: 'b1c2d3e4-f5a6-4b7c-8d9e-0f1a2b3c4d5e',
        name: 'grafana',
        role: 'viewer',
        createdAt: '2026-02-01T12:00:00.000Z',
        revokedAt: '2026-03-01T08:00:00.000Z',
      },
    ],
  },
});
export type TokenListDto = z.infer<typeof tokenListDtoSchema>;

/** POST /api/v1/tokens. Strict: a field the API does not know is refused, never silently dropped. */
export const createTokenRequestSchema = z
  .strictObject({ name: z.string(), role: z.enum(ROLES) })
  .meta({ id: 'CreateTokenRequest', example: { name: 'ci', role: 'release-engineer' } });
export type CreateTokenRequest = z.infer<typeof createTokenRequestSchema>;
