/** Management API roles, weakest first: each role can do everything the ones before it can. */
export const ROLES = ['viewer', 'release-engineer', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/**
 * Tokens travel as `Authorization: Bearer <token>`.
 * POST /api/v1/tokens {name, role} (admin) -> 201 CreatedTokenDto (the secret is shown once)
 * GET /api/v1/tokens (admin) -> TokenListDto; DELETE /api/v1/tokens/:id (admin) -> 204
 */
export interface TokenDto {
  id: string;
  name: string;
  role: Role;
  createdAt: string;
  revokedAt: string | null;
}

export interface CreatedTokenDto extends TokenDto {
  token: string;
}

export interface TokenListDto {
  tokens: TokenDto[];
}
