import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Ed25519Signer, verifySignature } from './ed25519.js';
import { signMetadata, timestampOf } from './metadata-envelope.js';
import { SPEC_VERSION, type SignedEnvelope, type SnapshotSigned } from './tuf-types.js';

describe('metadata envelopes', () => {
  const snapshot: SnapshotSigned = {
    _type: 'snapshot',
    spec_version: SPEC_VERSION,
    version: 7,
    expires: '2031-01-01T00:00:00Z',
    meta: { 'targets.json': { version: 3 } },
  };

  it('signs with every signer, over the canonical form of `signed`', () => {
    const signers = [Ed25519Signer.generate(), Ed25519Signer.generate()];
    const file = signMetadata('snapshot', snapshot, signers);
    expect(file).toMatchObject({ role: 'snapshot', version: 7, expiresAt: '2031-01-01T00:00:00Z' });
    const envelope = JSON.parse(file.body) as SignedEnvelope<SnapshotSigned>;
    expect(envelope.signed).toEqual(snapshot);
    expect(envelope.signatures.map((s) => s.keyid)).toEqual(signers.map((s) => s.keyId));
    signers.forEach((s, i) =>
      expect(verifySignature(s.tufKey, snapshot, envelope.signatures[i]!)).toBe(true),
    );
    const tampered = { ...snapshot, version: 8 };
    expect(verifySignature(signers[0]!.tufKey, tampered, envelope.signatures[0]!)).toBe(false);
  });

  it('a timestamp names the snapshot by the length and sha256 of the exact bytes served', () => {
    const file = signMetadata('snapshot', snapshot, [Ed25519Signer.generate()]);
    const timestamp = timestampOf(file, 12, '2030-01-01T00:00:00Z');
    const bytes = Buffer.from(file.body, 'utf8');
    expect(timestamp).toEqual({
      _type: 'timestamp',
      spec_version: SPEC_VERSION,
      version: 12,
      expires: '2030-01-01T00:00:00Z',
      meta: {
        'snapshot.json': {
          version: 7,
          length: bytes.length,
          hashes: { sha256: createHash('sha256').update(bytes).digest('hex') },
        },
      },
    });
  });
});
