/**
 * Node ids as the enrollment flow creates them (UUIDs) and any other id made of URN-safe characters. No ':' so
 * `urn:otter:node:<nodeId>` and the Redis key `jti:<nodeId>:<jti>` split one way only; no ',', '=' or '+'
 * so the subject `CN=<nodeId>` reads back unescaped.
 */
export const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export const NODE_URN_PREFIX = 'urn:otter:node:';
export const HARDWARE_URN_PREFIX = 'urn:otter:hardware:';

/** Audience of the short-lived assertions a node signs with its TPM device key to prove possession. */
export const DEVICE_AUTH_AUDIENCE = 'otter:device-auth';
/** Audience of the access tokens Otter issues to nodes for the device API. */
export const DEVICE_API_AUDIENCE = 'otter:device-api';
/** `iss` of Otter's own access tokens. */
export const ACCESS_TOKEN_ISSUER = 'otter';

export function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && NODE_ID_PATTERN.test(value);
}
