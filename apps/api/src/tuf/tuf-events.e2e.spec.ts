import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { OtterEventOf, PublishedRootDto } from '#otter/contracts';
import { DirectorRepository } from '#otter/director';
import { EventReader } from '#otter/events';
import {
  createRootDraft,
  Ed25519Signer,
  signRoot,
  tufExpiry,
  type OnlineRole,
  type RootSigned,
  type TufKey,
} from '#otter/tuf-signing';
import { startApi, type ApiHarness } from '../testing/api-harness.js';

// The api announces every TUF role version it commits (tuf.metadata.resigned): a root published to either
// repository through the ceremony's route, what the image root re-signs with it, and what a new target
// re-signs (a release). The events are read back from the Redis stream, as GET /api/v1/events serves them.

type Resigned = OtterEventOf<'tuf.metadata.resigned'>;

let api: ApiHarness;
let reader: EventReader;
let devRoot: Ed25519Signer;
let seen = '0-0';

beforeAll(async () => {
  api = await startApi();
  reader = api.app.get(EventReader, { strict: false });
  // Outside production both repositories start from a dev root signed by this key (the data dir's).
  devRoot = Ed25519Signer.fromPem(readFileSync(join(api.config.dataDir, 'keys', 'dev-root-key.pem'), 'utf8'));
});
afterAll(async () => api?.close());

/** The TUF events published since the last call. */
async function newEvents(): Promise<Resigned[]> {
  const events = await reader.range(seen, 10_000);
  seen = events.at(-1)?.id ?? seen;
  return events.map((e) => e.event).filter((e): e is Resigned => e.kind === 'tuf.metadata.resigned');
}

/** The newest version of each image role as the database holds it, with its expiry. */
async function imageHeads(): Promise<Map<string, { version: number; expires: string }>> {
  const rows = await api.db
    .selectFrom('tuf_metadata')
    .select(['role', 'version', 'expires_at'])
    .where('repository', '=', 'image')
    .execute();
  const heads = new Map<string, { version: number; expires: string }>();
  for (const r of rows) {
    if ((heads.get(r.role)?.version ?? 0) < Number(r.version))
      heads.set(r.role, { version: Number(r.version), expires: String(r.expires_at) });
  }
  return heads;
}

/** The next root, kept under the dev root key, naming the online keys the server holds. */
function nextRoot(previous: RootSigned, onlineKeys: Record<OnlineRole, TufKey[]>) {
  const draft = createRootDraft({
    previous,
    rootKeys: [devRoot.tufKey],
    rootThreshold: 1,
    onlineKeys,
    expires: tufExpiry(Date.now() + 30 * 86_400_000),
  });
  return signRoot(draft, devRoot);
}

describe('tuf.metadata.resigned', () => {
  it('announces the dev roots of both repositories, and every image role signed with the first', async () => {
    const events = await newEvents();
    expect(events.filter((e) => e.repository === 'director')).toEqual([
      expect.objectContaining({ repository: 'director', role: 'root', version: 1 }),
    ]);
    const image = events.filter((e) => e.repository === 'image');
    const heads = await imageHeads();
    expect(image.map((e) => e.role).sort()).toEqual([...heads.keys()].sort());
    for (const e of image) expect(e.version).toBe(heads.get(e.role)!.version);
  });

  it('announces an image root published through the ceremony route, and each role re-signed with it', async () => {
    const current = await api.repository.currentRoot();
    const signed = nextRoot(current.signed, await api.repository.preferredOnlineKeys());
    const published = await api.admin<PublishedRootDto>('POST', '/api/v1/tuf/image/root', signed);
    expect(published.version).toBe(2);

    const events = await newEvents();
    const heads = await imageHeads();
    // Every image role has a new version, and each one appears exactly once, with its stored version and expiry.
    expect(events.every((e) => e.repository === 'image')).toBe(true);
    expect(events.map((e) => e.role).sort()).toEqual([...heads.keys()].sort());
    for (const e of events) {
      expect(e.version, e.role).toBe(heads.get(e.role)!.version);
      expect(Date.parse(e.expires), e.role).toBe(Date.parse(heads.get(e.role)!.expires));
    }
    expect(events.find((e) => e.role === 'root')).toMatchObject({
      version: 2,
      expires: published.expires,
    });
  });

  it('announces a director root published through its ceremony route, and nothing per node', async () => {
    const director = api.app.get(DirectorRepository, { strict: false });
    const current = await director.currentRoot();
    const signed = nextRoot(current.signed, await director.preferredOnlineKeys());
    const published = await api.admin<PublishedRootDto>('POST', '/api/v1/tuf/director/root', signed);

    expect(await newEvents()).toEqual([
      expect.objectContaining({
        repository: 'director',
        role: 'root',
        version: published.version,
        expires: published.expires,
      }),
    ]);
  });

  it('announces nothing for a root the ceremony refuses', async () => {
    const current = await api.repository.currentRoot();
    const next = { ...current.signed, version: current.signed.version + 1 };
    await expect(
      api.admin('POST', '/api/v1/tuf/image/root', { signatures: [], signed: next }),
    ).rejects.toThrow('422');
    expect(await newEvents()).toEqual([]);
    expect((await api.repository.currentRoot()).signed.version).toBe(current.signed.version);
  });

  it("announces the bin, snapshot and timestamp a release re-signs, with the release's own event", async () => {
    const before = await imageHeads();
    const form = new FormData();
    form.append('hardware', 'rpi4');
    form.append('version', '2.0.0');
    form.append('measurements', JSON.stringify({ 9: createHash('sha256').update('boot').digest('hex') }));
    form.append('image', new Blob([randomBytes(1000)]), 'image.bin');
    const token = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    const res = await fetch(`${api.url}/api/v1/releases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    expect(res.status).toBe(201);

    const all = (await reader.range(seen, 10_000)).map((e) => e.event);
    expect(all.filter((e) => e.kind === 'release.published')).toHaveLength(1);
    const events = await newEvents();
    const after = await imageHeads();
    const changed = [...after].filter(([role, h]) => before.get(role)?.version !== h.version);
    expect(changed.map(([role]) => role)).toEqual(expect.arrayContaining(['snapshot', 'timestamp']));
    expect(changed).toHaveLength(3);
    expect(events.map((e) => [e.role, e.version]).sort()).toEqual(
      changed.map(([role, h]) => [role, h.version]).sort(),
    );
  });
});
