import type { Role } from '#otter/contracts';

/** Who is calling the management API: the token that authenticated the request. */
export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
}

/** The request as ApiTokenGuard leaves it. */
export interface AuthenticatedRequest {
  principal?: Principal;
}
