import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import v8 from 'node:v8';
import vm from 'node:vm';
import multipart from '@fastify/multipart';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { CreatedTokenDto, ReleaseDto, TokenDto } from '#otter/contracts';
import { ApiError, ApiUnreachableError } from './api-error.js';
import { ReleaseInputError } from './release-input.js';
import { OtterApiClient, type PushReleaseInput } from './otter-api-client.js';
import { UploadSourceError } from './multipart-upload.js';

const TOKEN = 'otr_test_release_engineer';

interface ReceivedUpload {
  contentLength: number;
  partOrder: string[];
  fields: Record<string, string>;
  imageSha256: string;
  imageBytes: number;
}

/**
 * A stand-in for the management API that follows libs/contracts: real Fastify, real @fastify/multipart
 * parser, bearer auth, 201/409/401/413 with Otter's error shape. It records what it received.
 */
class FakeOtterApi {
  readonly app: FastifyInstance;
  readonly requests: Array<{ method: string; url: string }> = [];
  readonly uploads: ReceivedUpload[] = [];
  readonly releases: ReleaseDto[] = [];
  readonly tokens: TokenDto[] = [];
  url = '';

  constructor(private readonly maxUploadBytes = Number.MAX_SAFE_INTEGER) {
    this.app = Fastify();
  }

  async start(): Promise<this> {
    const app = this.app;
    app.addHook('onRequest', async (req, reply) => {
      this.requests.push({ method: req.method, url: req.url });
      if (req.headers.authorization !== `Bearer ${TOKEN}`) {
        return reply.code(401).send(error(401, 'UNAUTHENTICATED', 'missing or invalid bearer token'));
      }
      // Refuse by declared length before reading the body. No `connection: close`: Node keeps reading (and
      // discarding) so the client reads the answer, stops sending and closes; closing first could reset the
      // connection under the client's write and lose the answer.
      if (Number(req.headers['content-length'] ?? 0) > this.maxUploadBytes) {
        return reply
          .code(413)
          .send(error(413, 'PAYLOAD_TOO_LARGE', `upload exceeds ${this.maxUploadBytes} bytes`));
      }
    });
    await app.register(multipart, { limits: { fileSize: Number.MAX_SAFE_INTEGER } });

    app.post('/api/v1/releases', async (req, reply) => {
      const upload: ReceivedUpload = {
        contentLength: Number(req.headers['content-length']),
        partOrder: [],
        fields: {},
        imageSha256: '',
        imageBytes: 0,
      };
      for await (const part of req.parts()) {
        upload.partOrder.push(part.fieldname);
        if (part.type === 'file') {
          if (!upload.fields.hardware || !upload.fields.version) {
            part.file.resume();
            return reply
              .code(400)
              .send(error(400, 'RELEASE_INVALID', 'image sent before hardware and version'));
          }
          const hash = createHash('sha256');
          await pipeline(
            part.file,
            new Writable({
              write(chunk: Buffer, _enc, done) {
                hash.update(chunk);
                upload.imageBytes += chunk.length;
                done();
              },
            }),
          );
          upload.imageSha256 = hash.digest('hex');
        } else {
          upload.fields[part.fieldname] = String(part.value);
        }
      }
      this.uploads.push(upload);
      const { hardware, version } = upload.fields;
      if (this.releases.some((r) => r.hardwareId === hardware && r.version === version)) {
        return reply.code(409).send(
          error(409, 'RELEASE_DUPLICATE', `release ${version} for ${hardware} already exists`, {
            hardware,
          }),
        );
      }
      const release: ReleaseDto = {
        id: randomUUID(),
        hardwareId: hardware,
        version,
        targetPath: `${hardware}/${version}.img`,
        sha256: upload.imageSha256,
        length: upload.imageBytes,
        measurements: upload.fields.measurements
          ? (JSON.parse(upload.fields.measurements) as Record<string, string>)
          : {},
        notes: upload.fields.notes ?? '',
        createdAt: new Date().toISOString(),
        createdBy: 'tester',
      };
      this.releases.unshift(release);
      return reply.code(201).send(release);
    });

    app.get<{ Querystring: { hardware?: string } }>('/api/v1/releases', async (req) => ({
      releases: this.releases.filter((r) => !req.query.hardware || r.hardwareId === req.query.hardware),
    }));

    app.post<{ Body: { name: string; role: TokenDto['role'] } }>('/api/v1/tokens', async (req, reply) => {
      const token: TokenDto = {
        id: randomUUID(),
        name: req.body.name,
        role: req.body.role,
        createdAt: new Date().toISOString(),
        revokedAt: null,
      };
      this.tokens.push(token);
      const created: CreatedTokenDto = { ...token, token: `otr_${randomBytes(8).toString('hex')}` };
      return reply.code(201).send(created);
    });
    app.get('/api/v1/tokens', async () => ({ tokens: this.tokens }));
    app.delete<{ Params: { id: string } }>('/api/v1/tokens/:id', async (req, reply) => {
      const token = this.tokens.find((t) => t.id === req.params.id);
      if (!token) return reply.code(404).send(error(404, 'NOT_FOUND', `no token ${req.params.id}`));
      token.revokedAt = new Date().toISOString();
      return reply.code(204).send();
    });

    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    this.url = `http://127.0.0.1:${address.port}`;
    return this;
  }
}

function error(statusCode: number, code: string, message: string, details?: Record<string, unknown>) {
  return { statusCode, code, message, ...(details ? { details } : {}) };
}

async function stop(server: Server | undefined): Promise<void> {
  if (!server) return;
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

const dir = mkdtempSync(join(tmpdir(), 'otter-api-client-'));
function imageFile(bytes: number): { path: string; data: Buffer } {
  const data = randomBytes(bytes);
  const path = join(dir, `${randomUUID()}.img`);
  writeFileSync(path, data);
  return { path, data };
}

const MEASUREMENTS = { '0': 'a'.repeat(64), '7': '0123456789abcdef'.repeat(4) };

describe('OtterApiClient against a contract-following server', () => {
  let api: FakeOtterApi;
  let client: OtterApiClient;

  beforeAll(async () => {
    api = await new FakeOtterApi().start();
    client = new OtterApiClient({ server: api.url, token: TOKEN });
  });
  afterAll(async () => {
    await api.app.close();
  });

  it('streams a multi-MB image that arrives byte-identical, fields first, with progress reaching the total', async () => {
    const image = imageFile(8 * 1024 * 1024 + 123);
    const progress: Array<[number, number]> = [];
    const release = await client.pushRelease({
      hardware: 'rpi4-gw',
      version: '1.4.0',
      measurements: MEASUREMENTS,
      notes: 'first cut — ünïcode',
      imagePath: image.path,
      onProgress: (sent, total) => progress.push([sent, total]),
    });

    const upload = api.uploads.at(-1);
    expect(upload?.imageSha256).toBe(sha256(image.data));
    expect(upload?.imageBytes).toBe(image.data.length);
    expect(upload?.partOrder).toEqual(['hardware', 'version', 'measurements', 'notes', 'image']);
    expect(upload?.fields).toEqual({
      hardware: 'rpi4-gw',
      version: '1.4.0',
      measurements: JSON.stringify(MEASUREMENTS),
      notes: 'first cut — ünïcode',
    });
    expect(release).toMatchObject({ hardwareId: 'rpi4-gw', version: '1.4.0', sha256: sha256(image.data) });
    expect(release.measurements).toEqual(MEASUREMENTS);

    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toEqual([image.data.length, image.data.length]);
    for (let i = 1; i < progress.length; i++) expect(progress[i][0]).toBeGreaterThan(progress[i - 1][0]);
  });

  it('omits optional fields and still sends hardware and version before the image', async () => {
    const image = imageFile(1000);
    await client.pushRelease({ hardware: 'edge-x86', version: '2.0.0-rc.1+build.5', imagePath: image.path });
    expect(api.uploads.at(-1)?.partOrder).toEqual(['hardware', 'version', 'image']);
    expect(api.uploads.at(-1)?.imageSha256).toBe(sha256(image.data));
  });

  it('pushes an empty image as a valid multipart body', async () => {
    const image = imageFile(0);
    const progress: Array<[number, number]> = [];
    const release = await client.pushRelease({
      hardware: 'empty',
      version: '0.0.1',
      imagePath: image.path,
      onProgress: (s, t) => progress.push([s, t]),
    });
    expect(release.length).toBe(0);
    expect(progress.at(-1)).toEqual([0, 0]);
  });

  it('surfaces a second push of the same version as ApiError 409 RELEASE_DUPLICATE with the server message', async () => {
    const image = imageFile(4096);
    await client.pushRelease({ hardware: 'dup-hw', version: '1.0.0', imagePath: image.path });
    const err = await client
      .pushRelease({ hardware: 'dup-hw', version: '1.0.0', imagePath: image.path })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({
      status: 409,
      code: 'RELEASE_DUPLICATE',
      message: 'release 1.0.0 for dup-hw already exists',
      details: { hardware: 'dup-hw' },
    });
  });

  it('surfaces a missing or wrong token as ApiError 401 UNAUTHENTICATED, for uploads and plain requests', async () => {
    const image = imageFile(2 * 1024 * 1024);
    const stranger = new OtterApiClient({ server: api.url, token: 'wrong' });
    const before = api.uploads.length;
    const pushErr = await stranger
      .pushRelease({ hardware: 'hw', version: '1.0.0', imagePath: image.path })
      .catch((e: unknown) => e);
    expect(pushErr).toBeInstanceOf(ApiError);
    expect(pushErr).toMatchObject({
      status: 401,
      code: 'UNAUTHENTICATED',
      message: 'missing or invalid bearer token',
    });
    expect(api.uploads.length).toBe(before);

    const listErr = await stranger.listReleases().catch((e: unknown) => e);
    expect(listErr).toMatchObject({ status: 401, code: 'UNAUTHENTICATED' });

    // No Authorization header at all: fetch straight at the server.
    const res = await fetch(`${api.url}/api/v1/releases`);
    expect(res.status).toBe(401);
  });

  it('lists releases, newest first, filtered by hardware through the query string', async () => {
    const image = imageFile(10);
    await client.pushRelease({ hardware: 'list-a', version: '1.0.0', imagePath: image.path });
    await client.pushRelease({ hardware: 'list-a', version: '1.1.0', imagePath: image.path });
    await client.pushRelease({ hardware: 'list-b', version: '1.0.0', imagePath: image.path });
    const a = await client.listReleases('list-a');
    expect(a.map((r) => r.version)).toEqual(['1.1.0', '1.0.0']);
    expect(api.requests.at(-1)?.url).toBe('/api/v1/releases?hardware=list-a');
    const all = await client.listReleases();
    expect(all.map((r) => r.hardwareId)).toEqual(expect.arrayContaining(['list-a', 'list-b']));
  });

  it('creates, lists and revokes tokens; revoking an unknown id is ApiError 404', async () => {
    const created = await client.createToken({ name: 'ci', role: 'release-engineer' });
    expect(created).toMatchObject({ name: 'ci', role: 'release-engineer', revokedAt: null });
    expect(created.token).toMatch(/^otr_/);
    expect((await client.listTokens()).map((t) => t.id)).toContain(created.id);
    await expect(client.revokeToken(created.id)).resolves.toBeUndefined();
    expect((await client.listTokens()).find((t) => t.id === created.id)?.revokedAt).not.toBeNull();
    await expect(client.revokeToken('nope')).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
  });

  it('refuses invalid fields before sending any request', async () => {
    const image = imageFile(10);
    const before = api.requests.length;
    const attempts: Array<Omit<PushReleaseInput, 'imagePath'>> = [
      { hardware: 'Bad Hardware', version: '1.0.0' },
      { hardware: 'hw', version: 'v1.0.0' },
      { hardware: 'hw', version: '1.0' },
      { hardware: 'hw', version: '1.0.0', measurements: { '24': 'a'.repeat(64) } },
      { hardware: 'hw', version: '1.0.0', measurements: { '01': 'a'.repeat(64) } },
      { hardware: 'hw', version: '1.0.0', measurements: { '1': 'A'.repeat(64) } },
      { hardware: 'hw', version: '1.0.0', notes: 'x'.repeat(16 * 1024 + 1) },
    ];
    for (const attempt of attempts) {
      await expect(client.pushRelease({ ...attempt, imagePath: image.path })).rejects.toBeInstanceOf(
        ReleaseInputError,
      );
    }
    expect(api.requests.length).toBe(before);
  });

  it('fails with the file system error for a missing image, before any request', async () => {
    const before = api.requests.length;
    await expect(
      client.pushRelease({ hardware: 'hw', version: '1.0.0', imagePath: join(dir, 'missing.img') }),
    ).rejects.toMatchObject({ code: 'ENOENT' });
    expect(api.requests.length).toBe(before);
  });

  it('aborts with UploadSourceError when the image shrinks mid-upload, and the server stores nothing', async () => {
    const image = imageFile(8 * 1024 * 1024);
    const releasesBefore = api.releases.length;
    const err = await client
      .pushRelease({
        hardware: 'shrink',
        version: '1.0.0',
        imagePath: image.path,
        onProgress: (sent) => {
          if (sent <= 1024 * 1024) truncateSync(image.path, 2 * 1024 * 1024);
        },
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UploadSourceError);
    expect((err as Error).message).toMatch(/shrank/);
    expect(api.releases.length).toBe(releasesBefore);
  });
});

describe('OtterApiClient upload framing', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await stop(server);
    server = undefined;
  });

  async function countingServer(): Promise<{ url: string; seen: Array<{ header: number; bytes: number }> }> {
    const seen: Array<{ header: number; bytes: number }> = [];
    server = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('end', () => {
        seen.push({ header: Number(req.headers['content-length']), bytes });
        res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    return { url: `http://127.0.0.1:${address.port}`, seen };
  }

  it('declares a content-length equal to the bytes on the wire, computed from the file size', async () => {
    const { url, seen } = await countingServer();
    const image = imageFile(3 * 1024 * 1024 + 7);
    await new OtterApiClient({ server: url, token: TOKEN }).pushRelease({
      hardware: 'hw',
      version: '1.0.0',
      measurements: MEASUREMENTS,
      notes: 'ünïcode notes',
      imagePath: image.path,
    });
    expect(seen).toHaveLength(1);
    expect(seen[0].bytes).toBe(seen[0].header);
    expect(seen[0].header).toBeGreaterThan(image.data.length);
    expect(seen[0].header).toBeLessThan(image.data.length + 2048);
  });

  it('surfaces an early 413 refusal as ApiError and stops reading the image', async () => {
    const api = await new FakeOtterApi(1024 * 1024).start();
    try {
      const image = imageFile(64 * 1024 * 1024);
      let sent = 0;
      const err = await new OtterApiClient({ server: api.url, token: TOKEN })
        .pushRelease({
          hardware: 'hw',
          version: '1.0.0',
          imagePath: image.path,
          onProgress: (s) => (sent = s),
        })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect(err).toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
      expect(sent).toBeLessThan(image.data.length);
    } finally {
      await api.app.close();
    }
  });

  it('keeps memory flat while streaming a large image', async () => {
    // The server runs in a child process so the measurement sees only the client's buffers.
    const child = spawn(
      process.execPath,
      [
        '-e',
        `const s = require('node:http').createServer((req, res) => {
           let n = 0;
           req.on('data', (c) => (n += c.length));
           req.on('end', () => res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ length: n })));
         });
         s.listen(0, '127.0.0.1', () => console.log(s.address().port));`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    try {
      const [line] = (await once(child.stdout, 'data')) as [Buffer];
      const url = `http://127.0.0.1:${line.toString().trim()}`;
      const path = join(dir, 'large.img');
      const size = 512 * 1024 * 1024;
      // Sparse: costs no disk and reads fast, but every byte still crosses the wire.
      writeFileSync(path, '');
      truncateSync(path, size);
      // Live buffers after a full GC: what the upload actually holds, not what the allocator has yet to return.
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      gc();
      gc();
      const baseline = process.memoryUsage().arrayBuffers;
      let peak = baseline;
      let chunks = 0;
      const answer = await new OtterApiClient({ server: url, token: TOKEN }).pushRelease({
        hardware: 'large',
        version: '1.0.0',
        imagePath: path,
        onProgress: () => {
          if (++chunks % 32 !== 0) return;
          // Twice: the first collection can leave dead buffers to a lazy sweep that still counts them.
          gc();
          gc();
          peak = Math.max(peak, process.memoryUsage().arrayBuffers);
        },
      });
      expect(answer.length).toBeGreaterThan(size);
      expect(chunks).toBe(size / (1024 * 1024));
      expect(peak - baseline).toBeLessThan(32 * 1024 * 1024);
    } finally {
      child.kill();
    }
  });

  it('refuses to follow a redirect, saying so', async () => {
    server = createServer((_req, res) =>
      res.writeHead(307, { location: 'http://127.0.0.1:1/elsewhere' }).end(),
    );
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    const err = await new OtterApiClient({ server: `http://127.0.0.1:${address.port}`, token: TOKEN })
      .listReleases()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiUnreachableError);
    expect((err as Error).message).toMatch(/redirect/);
  });

  it('reports an unreachable server as ApiUnreachableError naming the URL', async () => {
    const { url } = await countingServer();
    await stop(server);
    server = undefined;
    const err = await new OtterApiClient({ server: url, token: TOKEN })
      .listReleases()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiUnreachableError);
    expect((err as Error).message).toContain(`${url}/api/v1/releases`);
    expect((err as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('turns a non-Otter error page into ApiError with the HTTP status as code', async () => {
    server = createServer((_req, res) =>
      res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>'),
    );
    await new Promise<void>((r) => server?.listen(0, '127.0.0.1', r));
    const address = server.address();
    if (typeof address !== 'object' || address === null) throw new Error('no address');
    const err = await new OtterApiClient({ server: `http://127.0.0.1:${address.port}`, token: TOKEN })
      .listTokens()
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 502, code: 'HTTP_502', message: '<h1>Bad gateway</h1>' });
  });
});
