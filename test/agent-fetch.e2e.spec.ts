import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestS3Server, type TestS3Server } from '#otter/storage';
import { fetchTarget } from '#otter/tuf-client';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';

// The agent's download path against the real api, with images in S3: refresh through tuf-js, resume with
// Range from a partial file, verify before the file appears.
let s3: TestS3Server;
let api: ApiHarness;
const image = randomBytes(3 * 1024 * 1024 + 17);
const sha256 = createHash('sha256').update(image).digest('hex');
let root: string;

beforeAll(async () => {
  s3 = await startTestS3Server('otter-agent-test');
  api = await startApi({
    OTTER_BLOB_STORE: 's3',
    OTTER_S3_ENDPOINT: s3.config.endpoint!,
    OTTER_S3_BUCKET: s3.config.bucket,
    OTTER_S3_ACCESS_KEY_ID: s3.config.accessKeyId,
    OTTER_S3_SECRET_ACCESS_KEY: s3.config.secretAccessKey,
  });
  await api.publish('images/rpi4/3.0.0', image, { hardware: 'rpi4', version: '3.0.0' });
  root = join(mkdtempSync(join(tmpdir(), 'otter-root-')), 'root.json');
  writeFileSync(root, await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text());
});
afterAll(async () => {
  await api?.close();
  await s3?.close();
});

describe('agent fetch against Otter with an S3 blob store', () => {
  it('downloads, verifies and moves the image into place', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-agent-'));
    const out = join(dir, 'slot-b.img');
    const result = await fetchTarget({
      serverUrl: api.url,
      trustedRootPath: root,
      targetPath: 'images/rpi4/3.0.0',
      outFile: out,
      stateDir: join(dir, 'state'),
    });
    expect(result).toMatchObject({
      length: image.length,
      sha256,
      resumedFrom: 0,
      bytesDownloaded: image.length,
    });
    expect(readFileSync(out).equals(image)).toBe(true);
  });

  it('resumes an interrupted download with a Range request the server answers from S3', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-agent-'));
    const state = join(dir, 'state');
    mkdirSync(join(state, 'downloads'), { recursive: true });
    const already = 1_000_000;
    writeFileSync(join(state, 'downloads', `${sha256}.part`), image.subarray(0, already));
    const out = join(dir, 'slot-b.img');
    const result = await fetchTarget({
      serverUrl: api.url,
      trustedRootPath: root,
      targetPath: 'images/rpi4/3.0.0',
      outFile: out,
      stateDir: state,
    });
    expect(result.resumedFrom).toBe(already);
    expect(result.bytesDownloaded).toBe(image.length - already);
    expect(readFileSync(out).equals(image)).toBe(true);
  });

  it('refuses a partial file that was tampered with, and leaves no output', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-agent-'));
    const state = join(dir, 'state');
    mkdirSync(join(state, 'downloads'), { recursive: true });
    const evil = Buffer.from(image.subarray(0, 500_000));
    evil[1234] = evil[1234]! ^ 0xff;
    writeFileSync(join(state, 'downloads', `${sha256}.part`), evil);
    const out = join(dir, 'slot-b.img');
    await expect(
      fetchTarget({
        serverUrl: api.url,
        trustedRootPath: root,
        targetPath: 'images/rpi4/3.0.0',
        outFile: out,
        stateDir: state,
      }),
    ).rejects.toThrow(/hash|sha256|verif/i);
    expect(existsSync(out)).toBe(false);
  });

  it('fails cleanly for a target the repository does not sign', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-agent-'));
    await expect(
      fetchTarget({
        serverUrl: api.url,
        trustedRootPath: root,
        targetPath: 'images/rpi4/9.9.9',
        outFile: join(dir, 'x'),
        stateDir: join(dir, 's'),
      }),
    ).rejects.toThrow(/is not in/);
  });
});
