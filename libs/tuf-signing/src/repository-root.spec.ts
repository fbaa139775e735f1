import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Ed25519Signer } from './ed25519.js';
import { OnlineKeyStore } from './online-key-store.js';
import { RepositoryRoot, type RootFailure, type RootStorage } from './repository-root.js';
import { createRootDraft, signRoot, type RootDraftInput } from './root-ceremony.js';
import { tufExpiry } from './tuf-time.js';
import type { RootSigned, SignedEnvelope } from './tuf-types.js';

class Refusal extends Error {
  constructor(
    readonly failure: RootFailure,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

/** Roots in memory; a version is stored once, as the database's primary key would have it. */
class MemoryRoots implements RootStorage {
  readonly bodies: string[] = [];
  async latestRootBody(): Promise<string | undefined> {
    return this.bodies.at(-1);
  }
  async storeRoot(root: RootSigned, body: string): Promise<void> {
    if (root.version <= this.bodies.length) throw new Refusal('ROOT_REJECTED', 'published meanwhile');
    this.bodies.push(body);
  }
}

const silent = { log: () => undefined, warn: () => undefined };

function repositoryRoot(storage = new MemoryRoots(), dir = mkdtempSync(join(tmpdir(), 'otter-root-'))) {
  const keys = new OnlineKeyStore(dir, 'test', 'test passphrase');
  const root = new RepositoryRoot(
    'test',
    storage,
    keys,
    (failure, message, details) => new Refusal(failure, message, details),
    silent,
    86_400,
  );
  return { root, storage, dir };
}

/** The root after the current one, listing the held online keys unless `draft` says otherwise. */
async function nextRoot(
  root: RepositoryRoot,
  signers: Ed25519Signer[],
  draft: Pick<RootDraftInput, 'rootKeys'> & Partial<RootDraftInput>,
): Promise<SignedEnvelope<RootSigned>> {
  let next = createRootDraft({
    previous: (await root.current()).signed,
    rootThreshold: 1,
    onlineKeys: await root.preferredOnlineKeys(),
    expires: tufExpiry(Date.now() + 86_400_000),
    ...draft,
  });
  for (const s of signers) next = signRoot(next, s);
  return next;
}

describe('RepositoryRoot', () => {
  it('answers NOT_INITIALIZED before the first root, and a dev root is made once', async () => {
    const { root, storage } = repositoryRoot();
    expect(await root.isInitialized()).toBe(false);
    await expect(root.current()).rejects.toMatchObject({ failure: 'NOT_INITIALIZED' });
    const devRoot = Ed25519Signer.generate();
    expect(await root.initializeWithDevRoot(devRoot)).toBe(true);
    expect(await root.initializeWithDevRoot(devRoot)).toBe(false);
    expect(storage.bodies).toHaveLength(1);
    const published = (await root.current()).signed;
    expect(published.roles.root.keyids).toEqual([devRoot.keyId]);
    expect((await root.onlineKeys()).every((k) => k.active)).toBe(true);
  });

  it('two processes racing to make the dev root: one wins, the other adopts it', async () => {
    const storage = new MemoryRoots();
    const first = repositoryRoot(storage);
    const second = repositoryRoot(storage, first.dir);
    const devRoot = Ed25519Signer.generate();
    const results = await Promise.all([
      first.root.initializeWithDevRoot(devRoot),
      second.root.initializeWithDevRoot(devRoot),
    ]);
    expect(results.sort()).toEqual([false, true]);
    expect(storage.bodies).toHaveLength(1);
  });

  it('refuses a root naming an online key it does not hold, or an online key as a root key; stores nothing', async () => {
    const { root, storage, dir } = repositoryRoot();
    const devRoot = Ed25519Signer.generate();
    await root.initializeWithDevRoot(devRoot);
    const stranger = Ed25519Signer.generate();
    const held = await root.preferredOnlineKeys();
    const foreign = await nextRoot(root, [devRoot], {
      rootKeys: [devRoot.tufKey],
      onlineKeys: { ...held, timestamp: [stranger.tufKey] },
    });
    await expect(root.publish(foreign)).rejects.toMatchObject({
      failure: 'ROOT_REJECTED',
      details: {
        problems: [
          'Otter holds no private key for the timestamp role it names',
          `the timestamp role names key ${stranger.keyId.slice(0, 16)}…, which this repository does not hold`,
        ],
      },
    });

    // Signed by the current root key and by the online key it makes a root key: only the server's own check
    // stands in the way.
    const targetsKey = (await new OnlineKeyStore(dir, 'test', 'test passphrase').keys()).find(
      (k) => k.info.role === 'targets',
    )!.signer;
    const onlineAsRoot = await nextRoot(root, [devRoot, targetsKey], { rootKeys: [targetsKey.tufKey] });
    await expect(root.publish(onlineAsRoot)).rejects.toMatchObject({
      details: { problems: ['an online key must never be a root key'] },
    });
    expect(storage.bodies).toHaveLength(1);
  });

  it('refuses a root the current root keys did not sign', async () => {
    const { root, storage } = repositoryRoot();
    await root.initializeWithDevRoot(Ed25519Signer.generate());
    const rogue = Ed25519Signer.generate();
    await expect(
      root.publish(await nextRoot(root, [rogue], { rootKeys: [rogue.tufKey] })),
    ).rejects.toMatchObject({
      failure: 'ROOT_REJECTED',
      message: expect.stringMatching(/signed by 0 of the current root keys, needs 1/),
    });
    expect(storage.bodies).toHaveLength(1);
  });

  it('a rotation destroys the replaced online key and keeps one created for a later rotation', async () => {
    const { root, dir } = repositoryRoot();
    const devRoot = Ed25519Signer.generate();
    await root.initializeWithDevRoot(devRoot);
    const oldTimestamp = (await root.onlineKeys()).find((k) => k.role === 'timestamp')!;
    const rotated = await root.rotateOnlineKey('timestamp');
    expect(rotated.active).toBe(false);
    const next = await nextRoot(root, [devRoot], { rootKeys: [devRoot.tufKey] });
    expect(next.signed.roles.timestamp.keyids).toEqual([rotated.keyId]);
    const pending = await root.rotateOnlineKey('timestamp'); // made after the draft: waits for the next root
    await root.publish(next);
    const held = await new OnlineKeyStore(dir, 'test', 'test passphrase').keys(); // as on disk now
    const timestampKeys = held.filter((k) => k.info.role === 'timestamp').map((k) => k.info.keyId);
    expect(timestampKeys.sort()).toEqual([rotated.keyId, pending.keyId].sort());
    expect(timestampKeys).not.toContain(oldTimestamp.keyId);
    const signers = await root.signersFor((await root.current()).signed, 'timestamp');
    expect(signers.map((s) => s.keyId)).toEqual([rotated.keyId]);
  });

  it('answers KEY_UNAVAILABLE when it holds fewer keys of a role than the root names', async () => {
    const { root } = repositoryRoot();
    await root.initializeWithDevRoot(Ed25519Signer.generate());
    const current = (await root.current()).signed;
    const lost: RootSigned = {
      ...current,
      roles: { ...current.roles, snapshot: { keyids: [Ed25519Signer.generate().keyId], threshold: 1 } },
    };
    await expect(root.signersFor(lost, 'snapshot')).rejects.toMatchObject({
      failure: 'KEY_UNAVAILABLE',
      message: 'Otter holds 0 of the test snapshot keys the root names',
    });
  });
});
