import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreatedTokenDto, DeltaBuildDto } from '#otter/contracts';
import { DeltaBuildRepository } from '#otter/delta-builds';
import { startApi, type ApiHarness } from '../../../api/src/testing/api-harness.js';
import type { CliContext } from '../cli-context.js';
import { runCli } from '../main.js';

// `otter delta ...` against the real api (no worker: build outcomes are written through the repository).
let api: ApiHarness;
let adminToken: string;
const cwd = mkdtempSync(join(tmpdir(), 'otter-delta-cli-'));

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

async function otter(
  args: string[],
  token: string = adminToken,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Capture();
  const stderr = new Capture();
  const ctx: CliContext = { env: { OTTER_SERVER: api.url, OTTER_TOKEN: token }, cwd, stdout, stderr };
  const code = await runCli(args, ctx);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

beforeAll(async () => {
  api = await startApi({
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
  });
  adminToken = (await readFile(join(api.config.dataDir, 'admin-token'), 'utf8')).trim();
  await api.publish('images/rpi4/1.0.0', randomBytes(10_000));
  await api.publish('images/rpi4/1.1.0', randomBytes(10_000));
  await api.publish('images/rpi4/2.0.0', randomBytes(10_000));
});
afterAll(async () => {
  await api?.close();
});

describe('otter delta', () => {
  it('lists nothing, requests deltas, and lists them with state, progress, patch size and saving', async () => {
    expect(await otter(['delta', 'list'])).toEqual({ code: 0, stdout: '', stderr: 'no delta builds\n' });

    const requested = await otter([
      'delta',
      'request',
      '--hardware',
      'rpi4',
      '--from',
      '1.0.0',
      '--to',
      '2.0.0',
    ]);
    expect(requested).toEqual({
      code: 0,
      stdout: 'deltas/rpi4/1.0.0-2.0.0.delta: queued (0%)\n',
      stderr: '',
    });
    const json = await otter([
      'delta',
      'request',
      '--hardware',
      'rpi4',
      '--from',
      '1.1.0',
      '--to',
      '2.0.0',
      '--json',
    ]);
    expect(json.code).toBe(0);
    const second = JSON.parse(json.stdout) as DeltaBuildDto;
    expect(second).toMatchObject({ state: 'queued', targetPath: 'deltas/rpi4/1.1.0-2.0.0.delta' });

    // One build published (a 2500-byte patch of a 10000-byte image), the other failed with its reason.
    const builds = api.app.get(DeltaBuildRepository);
    const [first] = (await builds.list('rpi4')).filter((b) => b.from.version === '1.0.0');
    await builds.markPublished(first!.id, {
      length: 2500,
      sha256: 'ab'.repeat(32),
      blobKey: 'deltas/sha256/x',
    });
    await builds.markFailed(second.id, 'plan: blob not found (after 5 attempts)');

    const table = await otter(['delta', 'list']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^HARDWARE\s+FROM\s+TO\s+STATE\s+PROGRESS\s+PATCH\s+SAVING\s+ERROR$/);
    expect(lines).toContainEqual(
      expect.stringMatching(/^rpi4\s+1\.0\.0\s+2\.0\.0\s+published\s+100%\s+2\.4 KiB\s+75\.0%$/),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^rpi4\s+1\.1\.0\s+2\.0\.0\s+failed\s+0%\s+-\s+-\s+plan: blob not found \(after 5 attempts\)$/,
      ),
    );

    const listed = JSON.parse((await otter(['delta', 'list', '--json'])).stdout) as {
      deltas: Array<Record<string, unknown>>;
    };
    expect(listed.deltas).toContainEqual(
      expect.objectContaining({
        hardware: 'rpi4',
        from: '1.0.0',
        to: '2.0.0',
        state: 'published',
        progress: 100,
        patchBytes: 2500,
        fullBytes: 10_000,
        saving: 0.75,
      }),
    );
    expect(listed.deltas).toContainEqual(
      expect.objectContaining({
        from: '1.1.0',
        state: 'failed',
        error: 'plan: blob not found (after 5 attempts)',
      }),
    );
  });

  it('reports the api’s refusal and exits 1', async () => {
    const unknown = await otter([
      'delta',
      'request',
      '--hardware',
      'rpi4',
      '--from',
      '1.0.0',
      '--to',
      '9.9.9',
    ]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/^error: 404 RELEASE_NOT_FOUND: no release 9\.9\.9 for hardware rpi4/);

    const created = await otter(['token', 'create', '--name', `viewer-${randomUUID()}`, '--role', 'viewer']);
    const viewer = (JSON.parse(created.stdout) as CreatedTokenDto).token;
    const forbidden = await otter(
      ['delta', 'request', '--hardware', 'rpi4', '--from', '1.0.0', '--to', '2.0.0'],
      viewer,
    );
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/403 FORBIDDEN/);
    expect((await otter(['delta', 'list'], viewer)).code).toBe(0);

    const missing = await otter(['delta', 'request', '--hardware', 'rpi4', '--from', '1.0.0']);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/--to/);
  });

  it('shows bytes saved: nothing reported yet', async () => {
    expect(await otter(['delta', 'savings'])).toEqual({
      code: 0,
      stdout: '',
      stderr: 'no downloads reported\n',
    });
    expect(JSON.parse((await otter(['delta', 'savings', '--json'])).stdout)).toEqual({
      releases: [],
      nodes: [],
    });
  });
});
