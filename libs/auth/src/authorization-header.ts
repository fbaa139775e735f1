/**
 * `Authorization: <scheme> <token68>` (RFC 7235 §2.1; RFC 6750 §2.1 for Bearer). The scheme is matched
 * case-insensitively, as the RFCs require; the credentials must be a single token68. Management tokens and
 * device access tokens are both read through this one parser, so one header means the same on every route.
 */
const CREDENTIALS = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) +([A-Za-z0-9\-._~+/]+=*) *$/;

/** The credentials of an `Authorization` header using `scheme`, or undefined when it is absent or malformed. */
export function authorizationCredentials(
  header: string | string[] | undefined,
  scheme: string,
): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = CREDENTIALS.exec(header.trim());
  if (!match || match[1]!.toLowerCase() !== scheme.toLowerCase()) return undefined;
  return match[2];
}

/** The token of `Authorization: Bearer <token>` (any case of "Bearer"), or undefined. */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  return authorizationCredentials(header, 'Bearer');
}
