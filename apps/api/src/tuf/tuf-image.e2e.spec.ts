import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../testing/api-harness.js';

let api: ApiHarness;
const image = randomBytes(300_000);

beforeAll(async () => {
  api = await startApi();
  await api.publish('images/rpi4/2.4.0', image, { hardware: 'rpi4', version: '2.4.0' });
});
afterAll(async () => api?.close());

async function trustedRoot(): Promise<string> {
  const res = await fetch(`${api.url}/tuf/image/metadata/1.root.json`);
  return res.text();
}

function updater(rootJson: string): { updater: Updater; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'otter-client-'));
  writeFileSync(join(dir, 'root.json'), rootJson);
  return {
    dir,
    updater: new Updater({
      metadataDir: dir,
      metadataBaseUrl: `${api.url}/tuf/image/metadata`,
      targetDir: dir,
      targetBaseUrl: `${api.url}/tuf/image/targets`,
    }),
  };
}

describe('image repository served to a stock tuf-js client', () => {
  it('refreshes, finds the target through the hashed-bin delegation and downloads verified bytes', async () => {
    const { updater: u, dir } = updater(await trustedRoot());
    await u.refresh();
    const info = await u.getTargetInfo('images/rpi4/2.4.0');
    expect(info?.length).toBe(image.length);
    expect(info?.custom).toMatchObject({ hardware: 'rpi4', version: '2.4.0' });
    const file = await u.downloadTarget(info!, join(dir, 'image.bin'));
    expect(createHash('sha256').update(readFileSync(file)).digest('hex')).toBe(
      createHash('sha256').update(image).digest('hex'),
    );
  });

  it('serves immutable files with long-lived caching and timestamp.json with an ETag and 304', async () => {
    const ts = await fetch(`${api.url}/tuf/image/metadata/timestamp.json`);
    expect(ts.status).toBe(200);
    const etag = ts.headers.get('etag')!;
    expect(ts.headers.get('cache-control')).toMatch(/max-age=\d+/);
    const again = await fetch(`${api.url}/tuf/image/metadata/timestamp.json`, {
      headers: { 'if-none-match': etag },
    });
    expect(again.status).toBe(304);
    const root = await fetch(`${api.url}/tuf/image/metadata/1.root.json`);
    expect(root.headers.get('cache-control')).toContain('immutable');
  });

  it('serves target byte ranges so downloads can resume', async () => {
    const sha = createHash('sha256').update(image).digest('hex');
    const url = `${api.url}/tuf/image/targets/images/rpi4/${sha}.2.4.0`;
    const part = await fetch(url, { headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${image.length}`);
    expect(Buffer.from(await part.arrayBuffer())).toEqual(image.subarray(100, 200));
    const tail = await fetch(url, { headers: { range: `bytes=${image.length - 10}-` } });
    expect(Buffer.from(await tail.arrayBuffer())).toEqual(image.subarray(image.length - 10));
    const bad = await fetch(url, { headers: { range: `bytes=${image.length}-` } });
    expect(bad.status).toBe(416);
  });

  it('answers 404 for unknown metadata and targets, 400 for malformed names', async () => {
    expect((await fetch(`${api.url}/tuf/image/metadata/99.root.json`)).status).toBe(404);
    expect((await fetch(`${api.url}/tuf/image/metadata/root.json`)).status).toBe(400);
    expect((await fetch(`${api.url}/tuf/image/metadata/1.root.json.bak`)).status).toBe(400);
    expect((await fetch(`${api.url}/tuf/image/targets/images/rpi4/${'0'.repeat(64)}.2.4.0`)).status).toBe(
      404,
    );
    expect((await fetch(`${api.url}/tuf/image/targets/images/rpi4/2.4.0`)).status).toBe(400);
    expect((await fetch(`${api.url}/tuf/image/targets/..%2F..%2Fetc/passwd`)).status).toBe(400);
  });
});
