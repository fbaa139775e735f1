import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Updater } from 'tuf-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  createRootDraft,
  Ed25519Signer,
  signRoot,
  tufExpiry,
  type RootSigned,
  type SignedEnvelope,
} from '#otter/tuf-signing';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { TufAttacker } from '../testing/tuf-attacker.js';

let api: ApiHarness;
let attacker: TufAttacker;
let clientDir: string;
const imageA = randomBytes(10_000);
const imageB = randomBytes(12_000);

beforeEach(async () => {
  api = await startApi();
  attacker = new TufAttacker(api.db, api.config.dataDir);
  await api.publish('images/rpi4/1.0.0', imageA);
  await api.publish('images/rpi4/1.1.0', imageB);
  clientDir = mkdtempSync(join(tmpdir(), 'otter-client-'));
  writeFileSync(
    join(clientDir, 'root.json'),
    await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text(),
  );
});
afterEach(async () => api?.close());

/** One poll of a stock tuf-js client that keeps its trusted metadata in clientDir between polls. */
async function poll(target = 'images/rpi4/1.1.0'): Promise<string> {
  api.invalidateCaches();
  const u = new Updater({
    metadataDir: clientDir,
    metadataBaseUrl: `${api.url}/tuf/image/metadata`,
    targetDir: clientDir,
    targetBaseUrl: `${api.url}/tuf/image/targets`,
  });
  await u.refresh();
  const info = await u.getTargetInfo(target);
  if (!info) throw new Error('target not found');
  return u.downloadTarget(info, join(clientDir, `${randomBytes(4).toString('hex')}.bin`));
}

function trustedVersion(role: string): number {
  return (JSON.parse(readFileSync(join(clientDir, `${role}.json`), 'utf8')) as SignedEnvelope).signed.version;
}

describe('attacks a tuf-js client refuses against Otter', () => {
  it('rollback of timestamp.json to an older version', async () => {
    await poll();
    const ts = await attacker.latest('timestamp');
    await attacker.deleteFrom('timestamp', ts.version);
    await expect(poll()).rejects.toThrow(/version|rollback|expected/i);
  });

  it('rollback of snapshot, even with a validly signed new timestamp (stolen timestamp key)', async () => {
    await poll();
    const ts = await attacker.latest('timestamp');
    const snap = await attacker.latest('snapshot');
    const older = await attacker.body('snapshot', snap.version - 1);
    const signed = structuredClone(ts.envelope.signed) as Extract<
      SignedEnvelope['signed'],
      { _type: 'timestamp' }
    >;
    signed.version = ts.version + 1;
    signed.meta['snapshot.json'] = {
      version: snap.version - 1,
      length: Buffer.byteLength(older),
      hashes: { sha256: (await import('node:crypto')).createHash('sha256').update(older).digest('hex') },
    };
    await attacker.insert('timestamp', signed.version, await attacker.signWithOnlineKey('timestamp', signed));
    await expect(poll()).rejects.toThrow(/version|rollback|snapshot/i);
  });

  it('rollback of a targets role through a re-signed snapshot (stolen snapshot and timestamp keys)', async () => {
    await poll();
    const snap = await attacker.latest('snapshot');
    const signed = structuredClone(snap.envelope.signed) as Extract<
      SignedEnvelope['signed'],
      { _type: 'snapshot' }
    >;
    const binFile = Object.keys(signed.meta).find(
      (k) => k.startsWith('images-bin') && signed.meta[k]!.version > 1,
    )!;
    signed.version = snap.version + 1;
    signed.meta[binFile] = { version: signed.meta[binFile]!.version - 1 };
    const snapBody = await attacker.signWithOnlineKey('snapshot', signed);
    await attacker.insert('snapshot', signed.version, snapBody);
    const ts = await attacker.latest('timestamp');
    const tsSigned = structuredClone(ts.envelope.signed) as Extract<
      SignedEnvelope['signed'],
      { _type: 'timestamp' }
    >;
    tsSigned.version = ts.version + 1;
    tsSigned.meta['snapshot.json'] = {
      version: signed.version,
      length: Buffer.byteLength(snapBody),
      hashes: { sha256: (await import('node:crypto')).createHash('sha256').update(snapBody).digest('hex') },
    };
    await attacker.insert(
      'timestamp',
      tsSigned.version,
      await attacker.signWithOnlineKey('timestamp', tsSigned),
    );
    await expect(poll()).rejects.toThrow(/version|rollback/i);
  });

  it('freeze: a timestamp that has expired is refused', async () => {
    await poll();
    const ts = await attacker.latest('timestamp');
    const signed = structuredClone(ts.envelope.signed);
    signed.version = ts.version + 1;
    signed.expires = tufExpiry(Date.now() - 60_000);
    await attacker.insert('timestamp', signed.version, await attacker.signWithOnlineKey('timestamp', signed));
    await expect(poll()).rejects.toThrow(/expired/i);
  });

  it('mix-and-match: a targets file whose content is another version than the snapshot names', async () => {
    const snap = await attacker.latest('snapshot');
    const signed = snap.envelope.signed as Extract<SignedEnvelope['signed'], { _type: 'snapshot' }>;
    const [binFile, meta] = Object.entries(signed.meta).find(
      ([k, m]) => k.startsWith('images-bin') && m.version > 1,
    )!;
    const role = binFile.replace(/\.json$/, '');
    await attacker.replace(role, meta.version, await attacker.body(role, meta.version - 1));
    await expect(poll()).rejects.toThrow(/version|expected/i);
  });

  it('a target whose bytes differ from its signed hash is refused', async () => {
    const info = await api.repository.target(
      'images/rpi4/1.1.0',
      (await import('node:crypto')).createHash('sha256').update(imageB).digest('hex'),
    );
    const evil = Buffer.from(imageB);
    evil[100] = evil[100]! ^ 0xff;
    await api.blobs.put(info.blobKey, Readable.from([evil]));
    await expect(poll()).rejects.toThrow(/hash|digest|verif/i);
  });

  it('metadata signed below threshold (by a key the root does not name) is refused', async () => {
    await poll();
    const ts = await attacker.latest('timestamp');
    const signed = structuredClone(ts.envelope.signed);
    signed.version = ts.version + 1;
    await attacker.insert('timestamp', signed.version, attacker.signWith([Ed25519Signer.generate()], signed));
    await expect(poll()).rejects.toThrow(/signed by 0\/\d+ keys|threshold/i);
  });

  it('follows a root rotation signed by old and new root keys, and refuses an N+1 root the old keys did not sign', async () => {
    await poll();
    const devRoot = Ed25519Signer.fromPem(
      readFileSync(join(api.config.dataDir, 'keys', 'dev-root-key.pem'), 'utf8'),
    );
    const next = [Ed25519Signer.generate(), Ed25519Signer.generate()];
    const current = (await api.repository.currentRoot()).signed;
    const online = await api.repository.preferredOnlineKeys();
    let draft = createRootDraft({
      previous: current,
      rootKeys: next.map((k) => k.tufKey),
      rootThreshold: 2,
      onlineKeys: online,
      expires: tufExpiry(Date.now() + 86_400_000),
    });
    // Only the new keys: the server refuses it, as the client would.
    await expect(api.repository.publishRoot(signRoot(signRoot(draft, next[0]!), next[1]!))).rejects.toThrow(
      /current root keys/,
    );
    draft = signRoot(signRoot(signRoot(draft, devRoot), next[0]!), next[1]!);
    await api.repository.publishRoot(draft);
    await poll();
    expect(trustedVersion('root')).toBe(2);

    // Version 3, signed only by keys version 2 never named, smuggled into storage past the server's checks.
    const rogue = [Ed25519Signer.generate(), Ed25519Signer.generate()];
    const rogueDraft = createRootDraft({
      previous: draft.signed as RootSigned,
      rootKeys: rogue.map((k) => k.tufKey),
      rootThreshold: 1,
      onlineKeys: online,
      expires: tufExpiry(Date.now() + 86_400_000),
    });
    const signedRogue = signRoot(signRoot(rogueDraft, rogue[0]!), rogue[1]!);
    await expect(api.repository.publishRoot(signedRogue)).rejects.toThrow(/current root keys/);
    await attacker.insert('root', 3, JSON.stringify(signedRogue));
    await expect(poll()).rejects.toThrow(/signed by 0\/\d+ keys|threshold/i);
    expect(trustedVersion('root')).toBe(2);
  });

  it('two concurrent publishes of the same root: one wins, the other is refused as no longer next', async () => {
    const devRoot = Ed25519Signer.fromPem(
      readFileSync(join(api.config.dataDir, 'keys', 'dev-root-key.pem'), 'utf8'),
    );
    const draft = createRootDraft({
      previous: (await api.repository.currentRoot()).signed,
      rootKeys: [devRoot.tufKey],
      rootThreshold: 1,
      onlineKeys: await api.repository.preferredOnlineKeys(),
      expires: tufExpiry(Date.now() + 86_400_000),
    });
    const signed = signRoot(draft, devRoot);
    const results = await Promise.allSettled([
      api.repository.publishRoot(signed),
      api.repository.publishRoot(signed),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toMatchObject({ code: 'TUF_ROOT_REJECTED' });
    expect((await api.repository.currentRoot()).signed.version).toBe(2);
  });
});
