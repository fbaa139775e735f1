import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { testDatabases } from '#otter/db';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { rawMultipart, type RawPart } from '../testing/raw-multipart.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const pcr9 = createHash('sha256').update('boot').digest('hex');

function form(fields: Record<string, string>, image?: Buffer, imageField = 'image'): FormData {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  if (image) f.append(imageField, new Blob([image]), 'image.bin');
  return f;
}

describe.each(dbs)('releases on $name', ({ config: database }) => {
  let api: ApiHarness;
  let admin: string;
  let viewer: string;

  beforeAll(async () => {
    api = await startApi({
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
      OTTER_MAX_UPLOAD_BYTES: String(2 * 1024 * 1024),
    });
    admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    const created = await post(
      '/api/v1/tokens',
      admin,
      JSON.stringify({ name: 'viewer', role: 'viewer' }),
      'application/json',
    );
    viewer = ((await created.json()) as { token: string }).token;
  });
  afterAll(async () => api?.close());

  function post(
    path: string,
    token: string | undefined,
    body: RequestInit['body'],
    contentType?: string,
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (contentType) headers['content-type'] = contentType;
    return fetch(`${api.url}${path}`, { method: 'POST', body, headers });
  }

  /** Everything a failed request must leave untouched. */
  async function state(): Promise<string> {
    const count = async (table: 'releases' | 'tuf_targets' | 'tuf_metadata'): Promise<number> =>
      Number(
        (
          await api.db
            .selectFrom(table)
            .select(({ fn }) => fn.countAll<number>().as('n'))
            .executeTakeFirstOrThrow()
        ).n,
      );
    const blobs = (dir: string): number => {
      try {
        return readdirSync(dir, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).length;
      } catch {
        return 0;
      }
    };
    return JSON.stringify({
      releases: await count('releases'),
      targets: await count('tuf_targets'),
      metadata: await count('tuf_metadata'),
      blobs: blobs(join(api.config.dataDir, 'blobs')),
    });
  }

  it('publishes a release as a signed TUF target with its measurements, and lists it', async () => {
    const image = randomBytes(700_000);
    const res = await post(
      '/api/v1/releases',
      admin,
      form(
        { hardware: 'rpi4', version: '2.4.0', measurements: JSON.stringify({ 9: pcr9 }), notes: 'first' },
        image,
      ),
    );
    expect(res.status).toBe(201);
    const release = (await res.json()) as {
      sha256: string;
      length: number;
      targetPath: string;
      measurements: object;
    };
    expect(release).toMatchObject({
      sha256: createHash('sha256').update(image).digest('hex'),
      length: image.length,
      targetPath: 'images/rpi4/2.4.0',
      measurements: { 9: pcr9 },
    });

    const list = await fetch(`${api.url}/api/v1/releases?hardware=rpi4`, {
      headers: { authorization: `Bearer ${viewer}` },
    });
    expect(list.status).toBe(200);
    expect(((await list.json()) as { releases: unknown[] }).releases).toHaveLength(1);

    const dir = mkdtempSync(join(tmpdir(), 'otter-client-'));
    writeFileSync(
      join(dir, 'root.json'),
      await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text(),
    );
    const u = new Updater({
      metadataDir: dir,
      metadataBaseUrl: `${api.url}/tuf/image/metadata`,
      targetDir: dir,
      targetBaseUrl: `${api.url}/tuf/image/targets`,
    });
    await u.refresh();
    const info = await u.getTargetInfo('images/rpi4/2.4.0');
    expect(info?.custom).toEqual({ hardware: 'rpi4', version: '2.4.0', measurements: { 9: pcr9 } });
  });

  it('refuses a duplicate version with 409 and changes nothing', async () => {
    const before = await state();
    const res = await post(
      '/api/v1/releases',
      admin,
      form({ hardware: 'rpi4', version: '2.4.0' }, randomBytes(1000)),
    );
    expect(res.status).toBe(409);
    expect(((await res.json()) as { code: string }).code).toBe('RELEASE_DUPLICATE');
    expect(await state()).toBe(before);
  });

  it('refuses uploads without a token, with a bad token, or from a viewer', async () => {
    const before = await state();
    const body = (): FormData => form({ hardware: 'rpi4', version: '9.9.9' }, randomBytes(100));
    expect((await post('/api/v1/releases', undefined, body())).status).toBe(401);
    expect((await post('/api/v1/releases', 'otr_forged', body())).status).toBe(401);
    expect((await post('/api/v1/releases', viewer, body())).status).toBe(403);
    expect((await fetch(`${api.url}/api/v1/releases`)).status).toBe(401);
    expect(await state()).toBe(before);
  });

  const bad: Array<[string, () => { body: RequestInit['body']; type?: string }, number, RegExp]> = [
    [
      'a version that is not semver',
      () => ({ body: form({ hardware: 'rpi4', version: 'v2' }, randomBytes(10)) }),
      400,
      /version/,
    ],
    [
      'a hardware id with a path in it',
      () => ({ body: form({ hardware: '../etc', version: '1.0.0' }, randomBytes(10)) }),
      400,
      /hardware/,
    ],
    [
      'a hardware id that is too long',
      () => ({ body: form({ hardware: 'a'.repeat(65), version: '1.0.0' }, randomBytes(10)) }),
      400,
      /hardware/,
    ],
    [
      'measurements that are not JSON',
      () => ({ body: form({ hardware: 'rpi4', version: '1.0.0', measurements: '{' }, randomBytes(10)) }),
      400,
      /measurements/,
    ],
    [
      'a PCR index out of range',
      () => ({
        body: form(
          { hardware: 'rpi4', version: '1.0.0', measurements: JSON.stringify({ 24: pcr9 }) },
          randomBytes(10),
        ),
      }),
      400,
      /PCR/,
    ],
    [
      'a PCR value that is not sha256 hex',
      () => ({
        body: form(
          { hardware: 'rpi4', version: '1.0.0', measurements: JSON.stringify({ 1: 'xyz' }) },
          randomBytes(10),
        ),
      }),
      400,
      /sha256/,
    ],
    [
      'measurements of the wrong type',
      () => ({ body: form({ hardware: 'rpi4', version: '1.0.0', measurements: '[1,2]' }, randomBytes(10)) }),
      400,
      /measurements/,
    ],
    [
      'notes over 16 KiB',
      () => ({
        body: form({ hardware: 'rpi4', version: '1.0.0', notes: 'x'.repeat(17_000) }, randomBytes(10)),
      }),
      400,
      /notes/,
    ],
    [
      'an unknown field',
      () => ({ body: form({ hardware: 'rpi4', version: '1.0.0', channel: 'beta' }, randomBytes(10)) }),
      400,
      /unknown field/,
    ],
    ['no image part', () => ({ body: form({ hardware: 'rpi4', version: '1.0.0' }) }), 400, /image/],
    [
      'the image under another name',
      () => ({ body: form({ hardware: 'rpi4', version: '1.0.0' }, randomBytes(10), 'file') }),
      400,
      /image/,
    ],
    [
      'an empty image',
      () => ({ body: form({ hardware: 'rpi4', version: '1.0.0' }, Buffer.alloc(0)) }),
      400,
      /empty/,
    ],
    [
      'an image over OTTER_MAX_UPLOAD_BYTES',
      () => ({ body: form({ hardware: 'rpi4', version: '1.0.0' }, randomBytes(3 * 1024 * 1024)) }),
      413,
      /large|limit|bytes/i,
    ],
    [
      'a JSON body instead of multipart',
      () => ({ body: JSON.stringify({ hardware: 'rpi4' }), type: 'application/json' }),
      415,
      /multipart/,
    ],
  ];

  it.each(bad)(
    'refuses %s with a clear 4xx and leaves state unchanged',
    async (_name, make, status, reason) => {
      const before = await state();
      const { body, type } = make();
      const res = await post('/api/v1/releases', admin, body, type);
      expect(res.status).toBe(status);
      const json = (await res.json()) as { message: string };
      expect(json.message).toMatch(reason);
      expect(await state()).toBe(before);
    },
  );

  // Issue 9 item 7: an upload means exactly what was sent. Each body is built by hand, as an attacker (or a
  // broken client) would send it; what comes back is a 400 with the reason, and nothing is stored or signed.
  const B = 'otter-test-boundary';
  const text = (name: string, value: string): RawPart => ({ name, value });
  const file = (name = 'image', value: Buffer = randomBytes(2000)): RawPart => ({
    name,
    value,
    filename: 'image.bin',
  });
  const head = (version: string): RawPart[] => [text('hardware', 'rpi4'), text('version', version)];
  const withProtoKey = (key: string): string => `{"9":"${pcr9}","${key}":"${pcr9}"}`;
  const hostile: Array<[string, Buffer, string, RegExp]> = [
    [
      'measurements after the image (they would be signed as empty)',
      rawMultipart(B, [...head('3.0.1'), file(), text('measurements', JSON.stringify({ 9: pcr9 }))]),
      `multipart/form-data; boundary=${B}`,
      /part "measurements" comes after the image/,
    ],
    [
      'notes after the image',
      rawMultipart(B, [...head('3.0.2'), file(), text('notes', 'late')]),
      `multipart/form-data; boundary=${B}`,
      /part "notes" comes after the image/,
    ],
    [
      'an unknown part after the image',
      rawMultipart(B, [...head('3.0.3'), file(), text('channel', 'beta')]),
      `multipart/form-data; boundary=${B}`,
      /part "channel" comes after the image/,
    ],
    [
      'a second image part',
      rawMultipart(B, [...head('3.0.4'), file(), file()]),
      `multipart/form-data; boundary=${B}`,
      /second file part/,
    ],
    [
      'a content type without a boundary',
      rawMultipart(B, [...head('3.0.5'), file()]),
      'multipart/form-data',
      /malformed multipart body: .*boundary/i,
    ],
    [
      'a body with another boundary than the header',
      rawMultipart('some-other-boundary', [...head('3.0.6'), file()]),
      `multipart/form-data; boundary=${B}`,
      /malformed multipart body/,
    ],
    [
      'a body without its closing boundary',
      rawMultipart(B, [...head('3.0.7'), file()], { close: false }),
      `multipart/form-data; boundary=${B}`,
      /malformed multipart body/,
    ],
    [
      'measurements with a __proto__ key (it would be dropped and the rest signed)',
      rawMultipart(B, [...head('3.0.8'), text('measurements', withProtoKey('__proto__')), file()]),
      `multipart/form-data; boundary=${B}`,
      /measurements: .*the key "__proto__" is not allowed/,
    ],
    [
      'measurements with a constructor key',
      rawMultipart(B, [...head('3.0.9'), text('measurements', withProtoKey('constructor')), file()]),
      `multipart/form-data; boundary=${B}`,
      /measurements: .*the key "constructor" is not allowed/,
    ],
    [
      'measurements with a nested prototype key',
      rawMultipart(B, [...head('3.0.10'), text('measurements', '{"constructor":{"prototype":{}}}'), file()]),
      `multipart/form-data; boundary=${B}`,
      /measurements: .*is not allowed/,
    ],
  ];

  it.each(hostile)(
    'refuses %s: 400 with the reason; releases, TUF metadata and blobs unchanged',
    async (_name, body, type, reason) => {
      const before = await state();
      const res = await post('/api/v1/releases', admin, body, type);
      const answer = (await res.json()) as { statusCode: number; message: string };
      expect(answer.message).toMatch(reason);
      expect(res.status).toBe(400);
      expect(await state()).toBe(before);
    },
  );

  it('publishes the same hand-built parts in the right order (the refusals above are about the order)', async () => {
    const res = await post(
      '/api/v1/releases',
      admin,
      rawMultipart(B, [...head('3.1.0'), text('measurements', JSON.stringify({ 9: pcr9 })), file()]),
      `multipart/form-data; boundary=${B}`,
    );
    expect(res.status).toBe(201);
    expect(((await res.json()) as { measurements: object }).measurements).toEqual({ 9: pcr9 });
  });

  it('a client that goes away mid-upload is an info line, not an error, and leaves nothing behind', async () => {
    const errors = vi.spyOn(Logger.prototype, 'error');
    const infos = vi.spyOn(Logger.prototype, 'log');
    try {
      const before = await state();
      const url = new URL(api.url);
      // Cut once inside the text fields, once inside the image.
      const cuts = [
        rawMultipart(B, [text('hardware', 'rpi4')], { close: false }).subarray(0, 60),
        rawMultipart(B, [...head('3.2.0'), file('image', randomBytes(200_000))], { close: false }),
      ];
      for (const partial of cuts) {
        infos.mockClear();
        await new Promise<void>((resolve) => {
          const req = request({
            host: url.hostname,
            port: url.port,
            path: '/api/v1/releases',
            method: 'POST',
            headers: {
              authorization: `Bearer ${admin}`,
              'content-type': `multipart/form-data; boundary=${B}`,
              'content-length': String(partial.length + 1_000_000),
            },
          });
          req.on('error', () => resolve());
          req.on('close', () => resolve());
          req.write(partial, () => setTimeout(() => req.destroy(), 200));
        });
        await vi.waitFor(() =>
          expect(infos).toHaveBeenCalledWith(
            expect.objectContaining({ reason: 'aborted' }),
            'release upload abandoned: the client closed the connection',
          ),
        );
      }
      expect(errors).not.toHaveBeenCalled();
      await vi.waitFor(async () => expect(await state()).toBe(before));
    } finally {
      errors.mockRestore();
      infos.mockRestore();
    }
  });
});
