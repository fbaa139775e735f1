import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testDatabases } from '#otter/db';
import { tufExpiry, type SignedEnvelope, type TimestampSigned } from '#otter/tuf-signing';
import {
  checkDirectorAssignment,
  installTarget,
  readInstalledRelease,
  recordInstalledRelease,
  type DirectorDecision,
} from '#otter/tuf-client';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { databaseEnv } from './testing/database-env.js';
import { DirectorFixtures, type TestNode } from './testing/director-fixtures.js';
import { TamperingProxy } from './testing/tampering-proxy.js';

// Uptane-style full verification by the agent (libs/tuf-client) against the real api. Each attack is made
// for real: through the director's own API, with the director's stolen online keys, or by a man in the
// middle; the agent must refuse it.

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const images = { v1: randomBytes(6000), v2: randomBytes(7000) };
const signed = {
  v1: { sha256: sha256(images.v1), length: images.v1.length },
  v2: { sha256: sha256(images.v2), length: images.v2.length },
};

describe.each(dbs)('the agent against a hostile director on $name', ({ config: database }) => {
  let api: ApiHarness;
  let proxy: TamperingProxy;
  let fx: DirectorFixtures;

  beforeAll(async () => {
    // The tampering proxy sits in front of the api on loopback and says which host the agent asked for
    // (X-Forwarded-Host), as a deployment's proxy does: the api believes it only from a trusted proxy, and the
    // agent's DPoP proofs name the proxy's URL.
    api = await startApi({ ...databaseEnv(database), OTTER_TRUSTED_PROXIES: 'loopback' });
    proxy = await TamperingProxy.start(api.url);
    fx = new DirectorFixtures(api);
    await api.publish('images/rpi4/1.0.0', images.v1, { hardware: 'rpi4', version: '1.0.0' });
    await api.publish('images/rpi4/2.0.0', images.v2, { hardware: 'rpi4', version: '2.0.0' });
  });
  afterAll(async () => {
    await proxy?.close();
    await api?.close();
  });

  /** A provisioned agent for `node`; `check()` is one poll, through the proxy when asked. */
  async function agent(node: TestNode) {
    const device = await fx.provision(node);
    return {
      ...device,
      check: (via: 'api' | 'proxy' = 'api', runningVersion?: string): Promise<DirectorDecision> =>
        checkDirectorAssignment({
          serverUrl: via === 'api' ? api.url : proxy.url,
          nodeId: node.id,
          hardwareId: node.hardwareId,
          authorize: (url) => node.headers('GET', url),
          imageTrustedRootPath: device.imageRoot,
          directorTrustedRootPath: device.directorRoot,
          stateDir: device.stateDir,
          runningVersion,
        }),
    };
  }

  it('installs what both repositories sign alike, through installTarget, and then has nothing to do', async () => {
    const node = await fx.node();
    const device = await agent(node);
    expect(await device.check()).toEqual({ action: 'none' });

    await fx.assign(node, '2.0.0', signed.v2, 'rollout-42');
    const decision = await device.check();
    expect(decision).toMatchObject({
      action: 'install',
      target: {
        releaseVersion: '2.0.0',
        correlationId: 'rollout-42',
        image: { path: 'images/rpi4/2.0.0', ...signed.v2 },
      },
    });
    if (decision.action !== 'install') throw new Error('unreachable');
    const current = join(device.stateDir, '..', 'slot-a.img');
    const slot = join(device.stateDir, '..', 'slot-b.img');
    writeFileSync(current, images.v1);
    // What was verified is what gets installed: an image re-signed in between is refused before any byte.
    await expect(
      installTarget({
        serverUrl: api.url,
        trustedRootPath: device.imageRoot,
        targetPath: decision.target.image.path,
        expectedImage: signed.v1,
        currentFile: current,
        outFile: slot,
        stateDir: device.stateDir,
      }),
    ).rejects.toMatchObject({ code: 'ASSIGNMENT_REFUSED' });
    expect(existsSync(slot)).toBe(false);
    const installed = await installTarget({
      serverUrl: api.url,
      trustedRootPath: device.imageRoot,
      targetPath: decision.target.image.path,
      expectedImage: decision.target.image,
      currentFile: current,
      outFile: slot,
      stateDir: device.stateDir,
    });
    expect(installed.sha256).toBe(signed.v2.sha256);
    expect(readFileSync(slot).equals(images.v2)).toBe(true);
    await recordInstalledRelease(device.stateDir, {
      targetPath: decision.target.image.path,
      releaseVersion: decision.target.releaseVersion,
      sha256: decision.target.image.sha256,
    });
    expect(await device.check()).toMatchObject({ action: 'up-to-date', target: { releaseVersion: '2.0.0' } });
  });

  it('refuses an image the image repository never signed', async () => {
    const node = await fx.node();
    const device = await agent(node);
    await fx.assign(node, '9.9.9', { sha256: sha256(Buffer.from('evil')), length: 4 });
    await expect(device.check()).rejects.toMatchObject({
      code: 'ASSIGNMENT_REFUSED',
      message: expect.stringMatching(/image repository does not sign images\/rpi4\/9\.9\.9/),
    });
  });

  it('refuses a director target whose hashes or length differ from the image repository’s', async () => {
    const node = await fx.node();
    const device = await agent(node);
    await fx.assign(node, '2.0.0', { sha256: signed.v1.sha256, length: signed.v2.length });
    await expect(device.check()).rejects.toMatchObject({
      code: 'ASSIGNMENT_REFUSED',
      message: expect.stringMatching(/sha256 differs/),
    });
    await fx.assign(node, '2.0.0', { sha256: signed.v2.sha256, length: signed.v2.length + 1 });
    await expect(device.check()).rejects.toMatchObject({
      code: 'ASSIGNMENT_REFUSED',
      message: expect.stringMatching(/names 7001 bytes, the image repository signs 7000/),
    });
  });

  it('refuses another node’s director metadata served in place of its own', async () => {
    const victim = await fx.node();
    const other = await fx.node();
    const device = await agent(victim);
    // The other node's valid, signed assignment: the director root is shared, so every signature verifies.
    await fx.assign(other, '2.0.0', signed.v2);
    proxy.rewrite = async (request) => {
      if (!request.path.startsWith(`/tuf/director/${victim.id}/`)) return request;
      const path = request.path.replace(victim.id, other.id);
      return {
        path,
        headers: { ...request.headers, ...(await other.headers('GET', `${proxy.url}${path}`)) },
      };
    };
    try {
      await expect(device.check('proxy')).rejects.toMatchObject({
        code: 'ASSIGNMENT_REFUSED',
        message: expect.stringContaining(`is for node ${other.id}, not this node`),
      });
    } finally {
      proxy.rewrite = undefined;
    }
    // Asking the api directly for the other node's metadata with its own token is refused outright.
    const url = `${api.url}/tuf/director/${other.id}/metadata/timestamp.json`;
    const res = await fetch(url, { headers: await victim.headers('GET', url) });
    expect(res.status).toBe(403);
  });

  it('refuses a release counter going down, below what it installed or runs', async () => {
    const node = await fx.node();
    const device = await agent(node);
    await recordInstalledRelease(device.stateDir, {
      targetPath: 'images/rpi4/2.0.0',
      releaseVersion: '2.0.0',
      sha256: signed.v2.sha256,
    });
    // A validly signed, older image: both repositories agree on it, only its version is wrong.
    await fx.assign(node, '1.0.0', signed.v1);
    await expect(device.check()).rejects.toMatchObject({
      code: 'RELEASE_ROLLBACK',
      message: expect.stringMatching(/release 1\.0\.0, older than 2\.0\.0/),
    });
    // The record itself never goes down either.
    await expect(
      recordInstalledRelease(device.stateDir, {
        targetPath: 'images/rpi4/1.0.0',
        releaseVersion: '1.0.0',
        sha256: signed.v1.sha256,
      }),
    ).rejects.toMatchObject({ code: 'RELEASE_ROLLBACK' });
    expect((await readInstalledRelease(device.stateDir))?.releaseVersion).toBe('2.0.0');

    // A fresh state dir, but the node runs 2.0.0: the running version is a floor too.
    const fresh = await agent(node);
    await expect(fresh.check('api', '2.0.0')).rejects.toMatchObject({ code: 'RELEASE_ROLLBACK' });
  });

  it('refuses expired director metadata, even signed with the director’s own (stolen) timestamp key', async () => {
    const node = await fx.node();
    const device = await agent(node);
    await fx.assign(node, '2.0.0', signed.v2);
    expect((await device.check()).action).toBe('install');

    const key = await fx.stolenKey('director', 'timestamp');
    const current = await fx.json<SignedEnvelope<TimestampSigned>>(
      `/tuf/director/${node.id}/metadata/timestamp.json`,
      node,
    );
    const stale: TimestampSigned = {
      ...current.signed,
      version: current.signed.version + 1,
      expires: tufExpiry(Date.now() - 60_000),
    };
    const path = `/tuf/director/${node.id}/metadata/timestamp.json`;
    proxy.replace = (p) =>
      p === path ? JSON.stringify({ signatures: [key.sign(stale)], signed: stale }) : undefined;
    try {
      await expect(device.check('proxy')).rejects.toMatchObject({
        code: 'METADATA_REFRESH_FAILED',
        message: expect.stringMatching(/expired/i),
      });
      // The image repository's timestamp key cannot stand in for the director's.
      const imageKey = await fx.stolenKey('image', 'timestamp');
      const fresh = { ...stale, expires: tufExpiry(Date.now() + 3_600_000) };
      proxy.replace = (p) =>
        p === path ? JSON.stringify({ signatures: [imageKey.sign(fresh)], signed: fresh }) : undefined;
      await expect(device.check('proxy')).rejects.toMatchObject({
        code: 'METADATA_REFRESH_FAILED',
        message: expect.stringMatching(/signed by 0\/1|threshold/i),
      });
    } finally {
      proxy.replace = undefined;
    }
    // The honest director, polled directly, still verifies.
    expect((await device.check()).action).toBe('install');
  });
});
