import { createHash } from 'node:crypto';
import type { Ed25519Signer } from './ed25519.js';
import { SPEC_VERSION, type AnySigned, type TimestampSigned } from './tuf-types.js';

/** One signed metadata file as a repository stores it: the body is served byte for byte. */
export interface SignedMetadata<Role extends string = string> {
  role: Role;
  version: number;
  expiresAt: string;
  body: string;
}

/** Signs `signed` with every signer into the envelope `{signatures, signed}` that clients fetch. */
export function signMetadata<Role extends string>(
  role: Role,
  signed: AnySigned,
  signers: readonly Ed25519Signer[],
): SignedMetadata<Role> {
  // The stored string is served byte for byte, so the hashes in snapshot and timestamp always match.
  const body = JSON.stringify({ signatures: signers.map((s) => s.sign(signed)), signed });
  return { role, version: signed.version, expiresAt: signed.expires, body };
}

/** A timestamp naming a snapshot by version, and by the length and sha256 of the exact bytes served. */
export function timestampOf(
  snapshot: { version: number; body: string },
  version: number,
  expires: string,
): TimestampSigned {
  const bytes = Buffer.from(snapshot.body, 'utf8');
  return {
    _type: 'timestamp',
    spec_version: SPEC_VERSION,
    version,
    expires,
    meta: {
      'snapshot.json': {
        version: snapshot.version,
        length: bytes.length,
        hashes: { sha256: createHash('sha256').update(bytes).digest('hex') },
      },
    },
  };
}
