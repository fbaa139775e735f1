// The release engineer's side of the TUF key ceremony, end to end: `otter tuf ...` (in process, through
// runCli) against a real api, and a stock tuf-js Updater as the device that has to keep trusting the result.
import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Updater } from 'tuf-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRootDraft,
  Ed25519Signer,
  keyIdOf,
  signRoot,
  tufExpiry,
  type RootSigned,
  type SignedEnvelope,
  type TimestampSigned,
  type TufKey,
} from '#otter/tuf-signing';
import { ResumableFetcher } from '#otter/tuf-client';
import type { AuditListDto } from '#otter/contracts';
import { DirectorFixtures, type TestNode } from '../apps/api/src/director/testing/director-fixtures.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import type { CliContext } from '../apps/cli/src/cli-context.js';
import { runCli } from '../apps/cli/src/main.js';

class Capture extends Writable {
  text = '';
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    this.text += chunk.toString();
    done();
  }
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `otter ...` in `cwd` with `env` (an admin talks to `api` through its first-boot admin-token file). */
async function otter(cwd: string, env: NodeJS.ProcessEnv, args: string[]): Promise<Run> {
  const stdout = new Capture();
  const stderr = new Capture();
  const ctx: CliContext = { env, cwd, stdout, stderr };
  const code = await runCli(args, ctx);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/** Like `otter`, but the command must succeed. */
async function ok(cwd: string, env: NodeJS.ProcessEnv, args: string[]): Promise<Run> {
  const run = await otter(cwd, env, args);
  if (run.code !== 0) throw new Error(`otter ${args.join(' ')} exited ${run.code}: ${run.stderr}`);
  return run;
}

function adminEnv(api: ApiHarness, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { OTTER_SERVER: api.url, OTTER_DATA_DIR: api.config.dataDir, ...extra };
}

const short = (keyId: string): string => keyId.slice(0, 16);
const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const readJson = <T>(file: string): T => JSON.parse(readFileSync(file, 'utf8')) as T;
const pubKeyId = (file: string): string => keyIdOf(readJson<TufKey>(file));
const rootVersion = (file: string): number => readJson<SignedEnvelope>(file).signed.version;

/** A device: a stock tuf-js client keeping its trusted metadata in `dir` (provisioned with root.json). */
async function devicePoll(api: ApiHarness, dir: string, target: string): Promise<Buffer> {
  const updater = new Updater({
    metadataDir: dir,
    metadataBaseUrl: `${api.url}/tuf/image/metadata`,
    targetDir: dir,
    targetBaseUrl: `${api.url}/tuf/image/targets`,
  });
  await updater.refresh();
  const info = await updater.getTargetInfo(target);
  if (!info) throw new Error(`${target} not found`);
  return readFileSync(await updater.downloadTarget(info, join(dir, `${randomBytes(4).toString('hex')}.bin`)));
}

async function servedTimestampKeyIds(api: ApiHarness): Promise<string[]> {
  const res = await fetch(`${api.url}/tuf/image/metadata/timestamp.json`);
  return ((await res.json()) as SignedEnvelope).signatures.map((s) => s.keyid);
}

describe('otter tuf: root rotation from the dev root, then an online key rotation', () => {
  let api: ApiHarness;
  let work: string;
  let device: string;
  let env: NodeJS.ProcessEnv;
  const officers = ['officer-a.pem', 'officer-b.pem', 'officer-c.pem'];
  const imageBefore = randomBytes(20_000);
  const imageAfter = randomBytes(30_000);

  beforeAll(async () => {
    api = await startApi();
    work = mkdtempSync(join(tmpdir(), 'otter-ceremony-'));
    device = mkdtempSync(join(tmpdir(), 'otter-device-'));
    env = adminEnv(api, { OFFICER_A_PASSPHRASE: 'officer a passphrase, long enough' });
    await api.publish('images/rpi4/1.0.0', imageBefore);
  });
  afterAll(async () => api?.close());

  it('rotates to a 2-of-3 officer root signed by the dev root and two officers; refuses under-signed roots', async () => {
    // The device is provisioned with the root `otter tuf root get` prints, and has polled once.
    await ok(work, env, ['tuf', 'root', 'get', '--out', join(device, 'root.json')]);
    expect(rootVersion(join(device, 'root.json'))).toBe(1);
    expect(await devicePoll(api, device, 'images/rpi4/1.0.0')).toEqual(imageBefore);

    const ids: string[] = [];
    for (const [i, file] of officers.entries()) {
      const run = await ok(work, env, [
        'tuf',
        'keygen',
        '--out',
        file,
        ...(i === 0 ? ['--passphrase-env', 'OFFICER_A_PASSPHRASE'] : []),
      ]);
      ids.push(run.stdout.trim());
      expect(ids[i]).toBe(pubKeyId(join(work, `${file}.pub.json`)));
    }

    const created = await ok(work, env, [
      'tuf',
      'root',
      'create',
      ...officers.flatMap((f) => ['--root-key', `${f}.pub.json`]),
      '--threshold',
      '2',
      '--out',
      'root-v2.json',
    ]);
    expect(created.stdout).toContain('root version 2 written to root-v2.json (unsigned)');
    const draft = readJson<SignedEnvelope<RootSigned>>(join(work, 'root-v2.json'));
    expect(draft.signed.roles.root).toEqual({ keyids: ids, threshold: 2 });
    expect(draft.signatures).toEqual([]);

    const devRootKey = join(api.config.dataDir, 'keys', 'dev-root-key.pem');
    const devRootId = Ed25519Signer.fromPem(readFileSync(devRootKey, 'utf8')).keyId;
    const signAs = (file: string, key: string) =>
      ok(work, env, [
        'tuf',
        'root',
        'sign',
        '--key',
        key,
        ...(key === officers[0] ? ['--passphrase-env', 'OFFICER_A_PASSPHRASE'] : []),
        file,
      ]);

    // One officer only: below both thresholds. The server names the keys that have not signed.
    copyFileSync(join(work, 'root-v2.json'), join(work, 'only-a.json'));
    await signAs('only-a.json', officers[0]!);
    const onlyA = await otter(work, env, ['tuf', 'root', 'publish', 'only-a.json']);
    expect(onlyA.code).toBe(1);
    expect(onlyA.stderr).toContain('the server refused root version 2 (422 TUF_ROOT_REJECTED)');
    expect(onlyA.stderr).toContain(
      `signed by 1 of its own root keys, needs 2; not signed by ${short(ids[1]!)}, ${short(ids[2]!)}`,
    );
    expect(onlyA.stderr).toContain(
      `signed by 0 of the current root keys, needs 1; not signed by ${short(devRootId)}`,
    );

    // Two officers meet the new root's threshold, but without the old dev root no v1 client could follow.
    copyFileSync(join(work, 'root-v2.json'), join(work, 'officers-only.json'));
    await signAs('officers-only.json', officers[0]!);
    await signAs('officers-only.json', officers[1]!);
    const officersOnly = await otter(work, env, ['tuf', 'root', 'publish', 'officers-only.json']);
    expect(officersOnly.code).toBe(1);
    expect(officersOnly.stderr).toContain('422 TUF_ROOT_REJECTED');
    expect(officersOnly.stderr).toContain(
      `signed by 0 of the current root keys, needs 1; not signed by ${short(devRootId)}`,
    );
    expect(officersOnly.stderr).not.toContain('its own root keys');

    // Refused roots changed nothing.
    expect(JSON.parse((await ok(work, env, ['tuf', 'root', 'get'])).stdout)).toMatchObject({
      signed: { version: 1 },
    });
    expect((await fetch(`${api.url}/tuf/image/metadata/2.root.json`)).status).toBe(404);

    // The real ceremony: the old root key and two officers sign; the signing report counts both sets.
    await ok(work, env, ['tuf', 'root', 'get', '--out', 'root-v1.json']);
    const byDev = await ok(work, env, [
      'tuf',
      'root',
      'sign',
      '--key',
      devRootKey,
      '--previous',
      'root-v1.json',
      'root-v2.json',
    ]);
    expect(byDev.stdout).toContain('root keys of version 2: 0 valid of 2 needed');
    expect(byDev.stdout).toContain('root keys of version 1 (previous): 1 valid of 1 needed (threshold met)');
    await signAs('root-v2.json', officers[0]!);
    const byB = await signAs('root-v2.json', officers[1]!);
    expect(byB.stdout).toContain('root keys of version 2: 2 valid of 2 needed (threshold met)');
    const verified = await ok(work, env, [
      'tuf',
      'root',
      'verify',
      'root-v2.json',
      '--previous',
      'root-v1.json',
    ]);
    expect(verified.stdout).toContain('ok: acceptable');

    const published = await ok(work, env, ['tuf', 'root', 'publish', 'root-v2.json']);
    expect(published.stdout).toMatch(/^published image root version 2 \(expires \d{4}-/);
    // The ceremony's publish is on the audit record, committed with the root it published (docs/audit.md).
    expect(
      (await api.admin<AuditListDto>('GET', '/api/v1/audit?action=tuf.root.published&outcome=ok')).entries,
    ).toMatchObject([
      { target: { kind: 'tuf-root', id: '2' }, actor: { role: 'admin' }, changes: { version: 2 } },
    ]);

    // A release published after the rotation reaches the device, which now trusts version 2.
    await api.publish('images/rpi4/1.1.0', imageAfter);
    api.invalidateCaches(); // the api holds timestamp.json for a second; a new release may take that long
    expect(sha256(await devicePoll(api, device, 'images/rpi4/1.1.0'))).toBe(sha256(imageAfter));
    expect(rootVersion(join(device, 'root.json'))).toBe(2);
  });

  it('rotates the timestamp key: root v3 signed by two officers lists the new key and the device follows', async () => {
    const before = JSON.parse((await ok(work, env, ['tuf', 'online-keys', '--json'])).stdout) as {
      keys: Array<{ role: string; keyId: string; active: boolean }>;
    };
    const oldKey = before.keys.find((k) => k.role === 'timestamp' && k.active)!.keyId;

    const rotated = await ok(work, env, ['tuf', 'rotate-online-key', 'timestamp', '--json']);
    const newKey = (JSON.parse(rotated.stdout) as { keyId: string }).keyId;
    expect(rotated.stderr).toContain('otter tuf root create');
    const table = (await ok(work, env, ['tuf', 'online-keys'])).stdout;
    expect(table).toMatch(new RegExp(`timestamp\\s+${short(oldKey)}\\s+\\S+\\s+active`));
    expect(table).toMatch(new RegExp(`timestamp\\s+${short(newKey)}\\s+\\S+\\s+pending`));
    // A pending key signs nothing yet.
    api.invalidateCaches();
    expect(await servedTimestampKeyIds(api)).toEqual([oldKey]);

    await ok(work, env, [
      'tuf',
      'root',
      'create',
      ...officers.flatMap((f) => ['--root-key', `${f}.pub.json`]),
      '--threshold',
      '2',
      '--out',
      'root-v3.json',
    ]);
    const draft = readJson<SignedEnvelope<RootSigned>>(join(work, 'root-v3.json'));
    expect(draft.signed.version).toBe(3);
    expect(draft.signed.roles.timestamp.keyids).toEqual([newKey]);
    for (const key of [officers[1]!, officers[2]!])
      await ok(work, env, ['tuf', 'root', 'sign', '--key', key, 'root-v3.json']);
    // No --previous: verify checks against the server's current root (v2), whose 2-of-3 officers signed.
    const verified = await ok(work, env, ['tuf', 'root', 'verify', 'root-v3.json']);
    expect(verified.stdout).toContain('replacing version 2');
    expect(verified.stdout).toContain(
      'root keys of version 2 (previous): 2 valid of 2 needed (threshold met)',
    );

    // The api holds timestamp.json for a second: warm that copy, then publish. The next request must get the
    // timestamp signed by the new key, or a device that just fetched root v3 would refuse it.
    expect(await servedTimestampKeyIds(api)).toEqual([oldKey]);
    await ok(work, env, ['tuf', 'root', 'publish', 'root-v3.json']);
    expect(await servedTimestampKeyIds(api)).toEqual([newKey]);

    expect(await devicePoll(api, device, 'images/rpi4/1.1.0')).toEqual(imageAfter);
    expect(rootVersion(join(device, 'root.json'))).toBe(3);
    const trusted = readJson<SignedEnvelope<RootSigned>>(join(device, 'root.json')).signed;
    expect(trusted.roles.timestamp.keyids).toEqual([newKey]);
    expect(Object.keys(trusted.keys)).not.toContain(oldKey);
    expect(readJson<SignedEnvelope>(join(device, 'timestamp.json')).signatures.map((s) => s.keyid)).toEqual([
      newKey,
    ]);

    const after = (await ok(work, env, ['tuf', 'online-keys'])).stdout;
    expect(after).toMatch(new RegExp(`timestamp\\s+${short(newKey)}\\s+\\S+\\s+active`));
    // The server destroyed the key the new root replaced: it can sign nothing any more.
    expect(after).not.toContain(short(oldKey));
  });
});

/**
 * A node's director client: a stock tuf-js Updater with the node's access token and DPoP proofs; returns the
 * target's custom.
 */
async function directorPoll(
  api: ApiHarness,
  node: TestNode,
  dir: string,
  target: string,
): Promise<Record<string, unknown>> {
  const updater = new Updater({
    metadataDir: dir,
    metadataBaseUrl: `${api.url}/tuf/director/${node.id}/metadata`,
    fetcher: new ResumableFetcher({ requestHeaders: (url) => node.headers('GET', url) }),
  });
  await updater.refresh();
  const info = await updater.getTargetInfo(target);
  if (!info) throw new Error(`the director names no ${target}`);
  return info.custom;
}

describe('otter tuf --repository director: the director root ceremony, each root kept to its repository', () => {
  let api: ApiHarness;
  let node: TestNode;
  let work: string;
  let device: string;
  let env: NodeJS.ProcessEnv;
  let devRootKey: string;
  let newTimestampKey: string;
  const officers = ['officer-a.pem.pub.json', 'officer-b.pem.pub.json'];
  const director = ['--repository', 'director'];
  const image = randomBytes(10_000);

  beforeAll(async () => {
    api = await startApi();
    const fx = new DirectorFixtures(api);
    work = mkdtempSync(join(tmpdir(), 'otter-director-ceremony-'));
    device = mkdtempSync(join(tmpdir(), 'otter-director-device-'));
    env = adminEnv(api);
    devRootKey = join(api.config.dataDir, 'keys', 'dev-root-key.pem');
    const { sha256: digest } = await api.publish('images/rpi4/2.0.0', image);
    node = await fx.node();
    await fx.assign(node, '2.0.0', { sha256: digest, length: image.length });
  });
  afterAll(async () => api?.close());

  const adminGet = async (path: string): Promise<unknown> => {
    const token = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
    const res = await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
    return res.json();
  };
  const onlineKeyIds = (root: RootSigned): string[] =>
    (['targets', 'snapshot', 'timestamp'] as const).flatMap((role) => root.roles[role].keyids);

  it('drafts the next director and image roots from each repository, and each refuses the other’s', async () => {
    // A node provisioned with the director root `root get --repository director` prints trusts it.
    await ok(work, env, ['tuf', 'root', 'get', ...director, '--out', join(device, 'root.json')]);
    await ok(work, env, ['tuf', 'root', 'get', '--out', 'image-root-v1.json']);
    await ok(work, env, ['tuf', 'root', 'get', ...director, '--out', 'director-root-v1.json']);
    const rootUrl = `${api.url}/tuf/director/${node.id}/metadata/1.root.json`;
    const served = await fetch(rootUrl, { headers: await node.headers('GET', rootUrl) });
    expect(readJson(join(device, 'root.json'))).toEqual(await served.json());
    const imageV1 = readJson<SignedEnvelope<RootSigned>>(join(work, 'image-root-v1.json')).signed;
    const directorV1 = readJson<SignedEnvelope<RootSigned>>(join(work, 'director-root-v1.json')).signed;
    expect(onlineKeyIds(directorV1).filter((id) => onlineKeyIds(imageV1).includes(id))).toEqual([]);
    expect(await directorPoll(api, node, device, 'images/rpi4/2.0.0')).toMatchObject({
      nodeId: node.id,
      releaseVersion: '2.0.0',
    });

    for (const file of officers)
      await ok(work, env, ['tuf', 'keygen', '--out', file.replace('.pub.json', '')]);

    // A new director timestamp key: pending at the director, unknown to the image repository.
    const rotated = await ok(work, env, ['tuf', 'rotate-online-key', 'timestamp', ...director, '--json']);
    newTimestampKey = (JSON.parse(rotated.stdout) as { keyId: string }).keyId;
    expect(rotated.stderr).toContain('otter tuf root publish --repository director root-next.json');
    expect((await ok(work, env, ['tuf', 'online-keys', ...director])).stdout).toMatch(
      new RegExp(`timestamp\\s+${short(newTimestampKey)}\\s+\\S+\\s+pending`),
    );
    expect((await ok(work, env, ['tuf', 'online-keys'])).stdout).not.toContain(short(newTimestampKey));

    // The director's online keys saved as a file, as a coordinator would carry them to an offline machine.
    const keys = await ok(work, env, ['tuf', 'online-keys', ...director, '--json']);
    writeFileSync(join(work, 'director-online-keys.json'), keys.stdout);
    const rootKeys = officers.flatMap((f) => ['--root-key', f]);
    const created = await ok(work, env, [
      'tuf',
      'root',
      'create',
      ...director,
      ...rootKeys,
      '--threshold',
      '2',
      '--online-keys',
      'director-online-keys.json',
      '--out',
      'director-root-v2.json',
    ]);
    expect(created.stdout).toContain('director root version 2 written to director-root-v2.json (unsigned)');
    expect(created.stdout).toContain('otter tuf root publish --repository director director-root-v2.json');
    await ok(work, env, [
      'tuf',
      'root',
      'create',
      ...rootKeys,
      '--threshold',
      '2',
      '--out',
      'image-root-v2.json',
    ]);
    const directorDraft = readJson<SignedEnvelope<RootSigned>>(join(work, 'director-root-v2.json')).signed;
    expect(directorDraft.roles.timestamp.keyids).toEqual([newTimestampKey]);
    expect(directorDraft.roles.targets.keyids).toEqual(directorV1.roles.targets.keyids);
    const imageDraft = readJson<SignedEnvelope<RootSigned>>(join(work, 'image-root-v2.json')).signed;
    expect(imageDraft.roles.targets.keyids).toEqual(imageV1.roles.targets.keyids);

    // Both version 1 roots are the dev root's: the dev root key and both officers sign each draft.
    for (const [draft, previous] of [
      ['director-root-v2.json', 'director-root-v1.json'],
      ['image-root-v2.json', 'image-root-v1.json'],
    ] as const) {
      await ok(work, env, ['tuf', 'root', 'sign', '--key', devRootKey, '--previous', previous, draft]);
      for (const file of officers) {
        await ok(work, env, ['tuf', 'root', 'sign', '--key', file.replace('.pub.json', ''), draft]);
      }
    }
    const verified = await ok(work, env, ['tuf', 'root', 'verify', ...director, 'director-root-v2.json']);
    expect(verified.stdout).toContain('replacing version 1');
    expect(verified.stdout).toContain('ok: acceptable');

    // Each is a valid next root for either repository as far as signatures and versions go (the same dev
    // root signed both version 1s); what tells them apart is the online keys, which the two never share.
    const wrongVerify = await otter(work, env, ['tuf', 'root', 'verify', 'director-root-v2.json']);
    expect(wrongVerify.code).toBe(1);
    expect(wrongVerify.stdout).toContain('image repository: Otter holds no private key for the targets role');
    expect(wrongVerify.stdout).toContain(
      "it names the director repository's online keys: it was made for `--repository director`",
    );
    const directorAtImage = await otter(work, env, ['tuf', 'root', 'publish', 'director-root-v2.json']);
    expect(directorAtImage.code).toBe(1);
    expect(directorAtImage.stderr).toContain('the server refused root version 2 (422 TUF_ROOT_REJECTED)');
    expect(directorAtImage.stderr).toContain('Otter holds no private key for the timestamp role it names');
    expect(directorAtImage.stderr).toContain('it was made for `--repository director`');
    const imageAtDirector = await otter(work, env, [
      'tuf',
      'root',
      'publish',
      ...director,
      'image-root-v2.json',
    ]);
    expect(imageAtDirector.code).toBe(1);
    expect(imageAtDirector.stderr).toContain(
      'the server refused root version 2 (422 DIRECTOR_ROOT_REJECTED)',
    );
    expect(imageAtDirector.stderr).toContain('Otter holds no private key for the snapshot role it names');
    expect(imageAtDirector.stderr).toContain('it was made for `--repository image`');
    // Refused roots changed nothing.
    expect(await adminGet('/api/v1/tuf/image/root')).toMatchObject({ signed: { version: 1 } });
    expect(await adminGet('/api/v1/tuf/director/root')).toMatchObject({ signed: { version: 1 } });
  });

  it('publishes the director root through the CLI; the node follows it and verifies its metadata with the new key', async () => {
    const published = await ok(work, env, ['tuf', 'root', 'publish', ...director, 'director-root-v2.json']);
    expect(published.stdout).toMatch(/^published director root version 2 \(expires \d{4}-/);
    expect(published.stderr).toContain('otter tuf root get --repository director --out director-root.json');
    expect(await adminGet('/api/v1/tuf/director/root')).toEqual(
      readJson(join(work, 'director-root-v2.json')),
    );
    const got = await ok(work, env, ['tuf', 'root', 'get', ...director]);
    expect(JSON.parse(got.stdout)).toEqual(readJson(join(work, 'director-root-v2.json')));
    // The image repository is untouched by the director's rotation.
    expect(await adminGet('/api/v1/tuf/image/root')).toMatchObject({ signed: { version: 1 } });

    // The provisioned node (trusting version 1) follows to version 2 and takes metadata signed by the new key.
    expect(await directorPoll(api, node, device, 'images/rpi4/2.0.0')).toMatchObject({ nodeId: node.id });
    expect(rootVersion(join(device, 'root.json'))).toBe(2);
    const timestamp = readJson<SignedEnvelope<TimestampSigned>>(join(device, 'timestamp.json'));
    expect(timestamp.signatures.map((s) => s.keyid)).toEqual([newTimestampKey]);
    // A node provisioned with the new root from the start verifies the same metadata.
    const fresh = mkdtempSync(join(tmpdir(), 'otter-director-device-'));
    await ok(work, env, ['tuf', 'root', 'get', ...director, '--out', join(fresh, 'root.json')]);
    expect(await directorPoll(api, node, fresh, 'images/rpi4/2.0.0')).toMatchObject({ nodeId: node.id });

    const keys = (await ok(work, env, ['tuf', 'online-keys', ...director])).stdout;
    expect(keys).toMatch(new RegExp(`timestamp\\s+${short(newTimestampKey)}\\s+\\S+\\s+active`));
    expect(keys.match(/timestamp/g)).toHaveLength(1); // the replaced key was destroyed

    // The image root still publishes where it belongs.
    await ok(work, env, ['tuf', 'root', 'publish', 'image-root-v2.json']);
    expect(await adminGet('/api/v1/tuf/image/root')).toMatchObject({ signed: { version: 2 } });
  });

  it('director-invalidate: every node is re-signed with a newer version on its next poll', async () => {
    await directorPoll(api, node, device, 'images/rpi4/2.0.0');
    const trusted = () =>
      readJson<SignedEnvelope<TimestampSigned>>(join(device, 'timestamp.json')).signed.version;
    const before = trusted();
    await directorPoll(api, node, device, 'images/rpi4/2.0.0');
    expect(trusted()).toBe(before); // nothing changed: the same metadata

    const run = await ok(work, env, ['tuf', 'director-invalidate']);
    expect(run.stdout).toMatch(/^director metadata of [1-9]\d* node\(s\) marked stale\n$/);
    await directorPoll(api, node, device, 'images/rpi4/2.0.0');
    expect(trusted()).toBeGreaterThan(before);

    const json = await ok(work, env, ['tuf', 'director-invalidate', '--json']);
    expect(JSON.parse(json.stdout)).toEqual({ nodes: expect.any(Number) });
    const refused = await otter(work, { ...env, OTTER_TOKEN: 'otr_not-a-token' }, [
      'tuf',
      'director-invalidate',
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('401');
  });
});

describe('otter tuf: production bootstrap', () => {
  let api: ApiHarness;
  afterAll(async () => api?.close());

  it('starts with no root, signs nothing, and serves clients once a 2-of-2 version 1 is published', async () => {
    api = await startApi({
      OTTER_ENV: 'production',
      OTTER_KEY_PASSPHRASE: 'a production passphrase, long enough',
    });
    const work = mkdtempSync(join(tmpdir(), 'otter-bootstrap-'));
    const env = adminEnv(api, { OFFICER_D_PASSPHRASE: 'officer d passphrase, long enough' });

    // No root: nothing for a client, and nothing can be signed.
    expect((await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).status).toBe(404);
    expect((await fetch(`${api.url}/tuf/image/metadata/timestamp.json`)).status).toBe(404);
    const noRoot = await otter(work, env, ['tuf', 'root', 'get']);
    expect(noRoot).toMatchObject({ code: 1 });
    expect(noRoot.stderr).toContain('503 TUF_NOT_INITIALIZED');
    writeFileSync(join(work, 'early.img'), randomBytes(4096));
    const push = await otter(work, env, [
      'release',
      'push',
      '--hardware',
      'rpi4',
      '--version',
      '0.9.0',
      'early.img',
    ]);
    expect(push.code).toBe(1);
    expect(push.stderr).toContain('503 TUF_NOT_INITIALIZED');
    await expect(api.publish('images/rpi4/0.9.1', randomBytes(100))).rejects.toThrow(/no root/);
    // The online keys exist already, waiting for a root that lists them.
    const keys = (await ok(work, env, ['tuf', 'online-keys'])).stdout;
    expect(keys.match(/pending/g)).toHaveLength(3);

    await ok(work, env, [
      'tuf',
      'keygen',
      '--out',
      'officer-d.pem',
      '--passphrase-env',
      'OFFICER_D_PASSPHRASE',
    ]);
    await ok(work, env, ['tuf', 'keygen', '--out', 'officer-e.pem']);
    const created = await ok(work, env, [
      'tuf',
      'root',
      'create',
      '--first',
      '--root-key',
      'officer-d.pem.pub.json',
      '--root-key',
      'officer-e.pem.pub.json',
      '--threshold',
      '2',
      '--expires',
      '30d',
      '--out',
      'root-v1.json',
    ]);
    expect(created.stdout).toContain('root version 1 written to root-v1.json (unsigned)');
    await ok(work, env, [
      'tuf',
      'root',
      'sign',
      '--key',
      'officer-d.pem',
      '--passphrase-env',
      'OFFICER_D_PASSPHRASE',
      'root-v1.json',
    ]);
    await ok(work, env, ['tuf', 'root', 'sign', '--key', 'officer-e.pem', 'root-v1.json']);
    await ok(work, env, ['tuf', 'root', 'verify', 'root-v1.json']);
    expect((await ok(work, env, ['tuf', 'root', 'publish', 'root-v1.json'])).stdout).toContain(
      'published image root version 1',
    );
    // The same file again is not the next version.
    const again = await otter(work, env, ['tuf', 'root', 'publish', 'root-v1.json']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('version must be 2, got 1');

    // A device provisioned with that root works.
    const device = mkdtempSync(join(tmpdir(), 'otter-device-'));
    await ok(work, env, ['tuf', 'root', 'get', '--out', join(device, 'root.json')]);
    const image = randomBytes(25_000);
    await api.publish('images/rpi4/1.0.0', image);
    expect(await devicePoll(api, device, 'images/rpi4/1.0.0')).toEqual(image);
    const trusted = readJson<SignedEnvelope<RootSigned>>(join(device, 'root.json')).signed;
    expect(trusted.roles.root).toEqual({
      keyids: [
        pubKeyId(join(work, 'officer-d.pem.pub.json')),
        pubKeyId(join(work, 'officer-e.pem.pub.json')),
      ],
      threshold: 2,
    });
  });
});

describe('otter tuf: offline steps (no server)', () => {
  // fetch refuses port 9 outright (a "bad port"): a command that tried the server would fail.
  const env: NodeJS.ProcessEnv = {
    OTTER_SERVER: 'http://127.0.0.1:9',
    OTTER_TOKEN: 'otr_unused',
    HOLDER_PASSPHRASE: 'the right passphrase, long enough',
    WRONG_PASSPHRASE: 'not the passphrase, but long enough',
    SHORT_PASSPHRASE: 'short',
  };
  const work = mkdtempSync(join(tmpdir(), 'otter-offline-'));

  it('keygen writes a 0600 key that signs only with the right passphrase; verify lists missing signatures', async () => {
    const generated = await ok(work, env, [
      'tuf',
      'keygen',
      '--out',
      'holder.pem',
      '--passphrase-env',
      'HOLDER_PASSPHRASE',
    ]);
    expect(statSync(join(work, 'holder.pem')).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(work, 'holder.pem'), 'utf8')).toContain('BEGIN ENCRYPTED PRIVATE KEY');
    const holderPub = readJson<TufKey>(join(work, 'holder.pem.pub.json'));
    expect(Object.keys(holderPub).sort()).toEqual(['keytype', 'keyval', 'scheme']);
    expect(generated.stdout.trim()).toBe(keyIdOf(holderPub));
    expect((await otter(work, env, ['tuf', 'keygen', '--out', 'holder.pem'])).stderr).toContain(
      'holder.pem already exists',
    );
    expect(
      (await otter(work, env, ['tuf', 'keygen', '--out', 'weak.pem', '--passphrase-env', 'SHORT_PASSPHRASE']))
        .stderr,
    ).toContain('at least 12 characters');
    await ok(work, env, ['tuf', 'keygen', '--out', 'second.pem']);
    expect(statSync(join(work, 'second.pem')).mode & 0o777).toBe(0o600);

    // The root being replaced, as a file: a 1-of-1 root whose key is `previous.pem`.
    const previousKey = Ed25519Signer.generate();
    writeFileSync(join(work, 'previous.pem'), previousKey.toPem(), { mode: 0o600 });
    const onlineKeys = {
      targets: [Ed25519Signer.generate().tufKey],
      snapshot: [Ed25519Signer.generate().tufKey],
      timestamp: [Ed25519Signer.generate().tufKey],
    };
    const previousRoot = signRoot(
      createRootDraft({
        rootKeys: [previousKey.tufKey],
        rootThreshold: 1,
        onlineKeys,
        expires: tufExpiry(Date.now() + 86_400_000),
      }),
      previousKey,
    );
    writeFileSync(join(work, 'previous.json'), JSON.stringify(previousRoot));

    // Local validation before anything is written.
    const tooHigh = await otter(work, env, [
      'tuf',
      'root',
      'create',
      '--previous',
      'previous.json',
      '--root-key',
      'holder.pem.pub.json',
      '--threshold',
      '2',
      '--out',
      'x.json',
    ]);
    expect(tooHigh.stderr).toContain('--threshold 2 exceeds the 1 root key(s) given');
    writeFileSync(
      join(work, 'not-a-key.json'),
      JSON.stringify({ keytype: 'rsa', scheme: 'rsassa-pss-sha256', keyval: { public: 'x' } }),
    );
    const notEd = await otter(work, env, [
      'tuf',
      'root',
      'create',
      '--previous',
      'previous.json',
      '--root-key',
      'not-a-key.json',
      '--threshold',
      '1',
      '--out',
      'x.json',
    ]);
    expect(notEd.stderr).toContain('not an ed25519 TUF public key');
    const create = (extra: string[]) =>
      otter(work, env, [
        'tuf',
        'root',
        'create',
        '--root-key',
        'holder.pem.pub.json',
        '--threshold',
        '1',
        ...extra,
        '--out',
        'x.json',
      ]);
    expect((await create(['--previous', 'previous.json', '--expires', '0d'])).stderr).toContain(
      'is not in the future',
    );
    expect((await create(['--previous', 'previous.json', '--expires', 'soon'])).stderr).toContain(
      'give days (365d)',
    );
    expect((await create(['--previous', 'previous.json', '--first'])).stderr).toContain('not both');
    expect(existsSync(join(work, 'x.json'))).toBe(false);

    const created = await ok(work, env, [
      'tuf',
      'root',
      'create',
      '--previous',
      'previous.json',
      '--root-key',
      'holder.pem.pub.json',
      '--root-key',
      'second.pem.pub.json',
      '--threshold',
      '2',
      '--expires',
      '2099-01-01',
      '--out',
      'draft.json',
    ]);
    expect(created.stderr).toContain('kept those of root version 1');
    const draft = readJson<SignedEnvelope<RootSigned>>(join(work, 'draft.json'));
    expect(draft.signed).toMatchObject({ version: 2, expires: '2099-01-01T00:00:00Z' });
    expect(draft.signed.roles.timestamp.keyids).toEqual(previousRoot.signed.roles.timestamp.keyids);

    const holderId = keyIdOf(holderPub);
    const secondId = pubKeyId(join(work, 'second.pem.pub.json'));
    const unsigned = await otter(work, env, [
      'tuf',
      'root',
      'verify',
      'draft.json',
      '--previous',
      'previous.json',
    ]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.stdout).toContain(
      `signed by 0 of its own root keys, needs 2; not signed by ${short(holderId)}, ${short(secondId)}`,
    );
    expect(unsigned.stdout).toContain(
      `signed by 0 of the current root keys, needs 1; not signed by ${short(previousKey.keyId)}`,
    );
    expect(unsigned.stderr).toContain('root version 2 is not acceptable (2 problem(s))');

    // The encrypted key signs only with its passphrase; failed attempts leave the file as it was.
    const sign = (extra: string[]) =>
      otter(work, env, ['tuf', 'root', 'sign', '--key', 'holder.pem', ...extra, 'draft.json']);
    expect((await sign([])).stderr).toContain('key holder.pem is encrypted: give --passphrase-env');
    expect((await sign(['--passphrase-env', 'WRONG_PASSPHRASE'])).stderr).toContain(
      'cannot decrypt key holder.pem: wrong passphrase',
    );
    expect((await sign(['--passphrase-env', 'UNSET_VARIABLE'])).stderr).toContain('UNSET_VARIABLE');
    expect(readJson<SignedEnvelope>(join(work, 'draft.json')).signatures).toEqual([]);
    const signed = await sign(['--passphrase-env', 'HOLDER_PASSPHRASE']);
    expect(signed.code).toBe(0);
    expect(signed.stdout).toContain(
      `root keys of version 2: 1 valid of 2 needed; signed: ${short(holderId)}`,
    );

    // A key neither root names is refused rather than adding a useless signature.
    writeFileSync(join(work, 'stranger.pem'), Ed25519Signer.generate().toPem());
    const stranger = await otter(work, env, [
      'tuf',
      'root',
      'sign',
      '--key',
      'stranger.pem',
      '--previous',
      'previous.json',
      'draft.json',
    ]);
    expect(stranger.stderr).toContain('is a root key of neither version 2 nor version 1');

    await ok(work, env, ['tuf', 'root', 'sign', '--key', 'second.pem', 'draft.json']);
    await ok(work, env, ['tuf', 'root', 'sign', '--key', 'previous.pem', 'draft.json']);
    const verified = await ok(work, env, [
      'tuf',
      'root',
      'verify',
      'draft.json',
      '--previous',
      'previous.json',
    ]);
    expect(verified.stdout).toContain('ok: acceptable to the server and to clients');
    expect(verified.stdout).toContain(
      'root keys of version 1 (previous): 1 valid of 1 needed (threshold met)',
    );
  });
});
