import 'reflect-metadata';
import { generateKeyPairSync, randomBytes, randomUUID, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplicationContext, LoggerService } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { decodeJwt, SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigModule, loadConfig } from '#otter/config';
import { DeviceCertificateAuthority } from './device-certificate-authority.js';
import { DeviceTokenService } from './device-token.service.js';
import { jwkThumbprint } from './dpop-proof.js';
import { IDENTITY_REDIS, IdentityModule } from './identity.module.js';

const redisUrl = process.env.OTTER_TEST_REDIS_URL as string;
const queuePrefix = `otter-test-identity-${randomBytes(6).toString('hex')}`;

/** Everything Nest logs while the module boots and runs, to check no key or token ends up there. */
const logged: string[] = [];
/** Every argument: structured logs put their fields first and the message after. */
const record = (...args: unknown[]): void =>
  void logged.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
const capture: LoggerService = { log: record, warn: record, error: record, debug: record, verbose: record };

async function start(
  dataDir: string,
  keyPassphrase?: string,
  env: Record<string, string> = {},
): Promise<INestApplicationContext> {
  const config = loadConfig({
    OTTER_DATA_DIR: dataDir,
    OTTER_LOG_LEVEL: 'silent',
    REDIS_URL: redisUrl,
    OTTER_QUEUE_PREFIX: queuePrefix,
    ...(keyPassphrase ? { OTTER_KEY_PASSPHRASE: keyPassphrase } : {}),
    ...env,
  });
  const moduleRef = await Test.createTestingModule({
    imports: [ConfigModule.forRoot(config), IdentityModule.forRoot({ accessTokenLifetimeSeconds: 120 })],
  })
    .setLogger(capture)
    .compile();
  return moduleRef.init();
}

afterAll(async () => {
  const redis = new Redis(redisUrl);
  const keys = await redis.keys(`${queuePrefix}:*`);
  if (keys.length > 0) await redis.del(...keys);
  await redis.quit();
});

describe('IdentityModule', () => {
  it('provides the CA and token service from the config; processes on one data dir share keys; closes Redis', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'otter-identity-module-'));
    // Two api processes starting together on one data dir (and the development passphrase).
    const [one, two] = await Promise.all([start(dataDir), start(dataDir)]);
    expect(existsSync(join(dataDir, 'keys', 'device-ca.sealed.json'))).toBe(true);
    expect(existsSync(join(dataDir, 'keys', 'device-token-key.sealed.json'))).toBe(true);
    expect(existsSync(join(dataDir, 'keys', 'dev-passphrase'))).toBe(true);

    const caOne = one.get(DeviceCertificateAuthority);
    const caTwo = two.get(DeviceCertificateAuthority);
    expect(await caOne.certificatePem()).toBe(await caTwo.certificatePem());
    const node = { nodeId: randomUUID(), ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) };
    const cert = await caOne.issue({
      nodeId: node.nodeId,
      hardwareId: 'rpi4',
      publicKey: node.publicKey,
      lifetimeSeconds: 3600,
    });
    expect((await caTwo.verify(cert.pem)).nodeId).toBe(node.nodeId);

    const tokensOne = one.get(DeviceTokenService);
    const tokensTwo = two.get(DeviceTokenService);
    const t = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ aud: 'otter:device-auth' })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(node.nodeId)
      .setSubject(node.nodeId)
      .setIssuedAt(t)
      .setExpirationTime(t + 60)
      .setJti('module-jti')
      .sign(node.privateKey);
    const claim = { nodeId: node.nodeId, devicePublicKey: new X509Certificate(cert.pem).publicKey };
    await tokensOne.verifyDeviceAssertion(assertion, claim);
    // The replay cache is shared through Redis, under the configured prefix.
    await expect(tokensTwo.verifyDeviceAssertion(assertion, claim)).rejects.toMatchObject({
      details: { reason: 'jti_reused' },
    });
    const redis = one.get<Redis>(IDENTITY_REDIS);
    expect(await redis.exists(`${queuePrefix}:jti:${node.nodeId}:module-jti`)).toBe(1);

    const jkt = 'k'.repeat(43);
    const { token, expiresAt } = await tokensOne.issueAccessToken(node.nodeId, jkt);
    expect(expiresAt.getTime() - Date.now()).toBeLessThanOrEqual(120_000);
    expect(await tokensTwo.verifyAccessToken(token)).toEqual({ nodeId: node.nodeId, jkt });
    await tokensOne.revokeNode(node.nodeId);
    expect(await tokensTwo.isRevoked(node.nodeId)).toBe(true);

    await one.close();
    await two.close();
    expect(redis.status).toBe('end');
    expect(two.get<Redis>(IDENTITY_REDIS).status).toBe('end');

    const everything = logged.join('\n');
    expect(everything).toContain('OTTER_KEY_PASSPHRASE is not set'); // the capture does see the module's logs
    expect(everything).not.toContain('PRIVATE KEY');
    expect(everything).not.toContain(token);
    expect(everything).not.toContain(assertion);
  });

  it('rotates the device CA on its own from OTTER_DEVICE_CA_TTL, with no certificate asked for, and says so', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'otter-identity-module-'));
    const app = await start(dataDir, 'a-passphrase-for-this', {
      OTTER_DEVICE_CERT_TTL: '1',
      OTTER_DEVICE_CA_TTL: '3',
    });
    try {
      const ca = app.get(DeviceCertificateAuthority);
      const first = new X509Certificate(await ca.certificatePem());
      expect(first.validToDate.getTime() - first.validFromDate.getTime()).toBe(3000);
      // The successor is due half way through the first CA's three seconds; the module's timer creates it.
      await expect
        .poll(() => existsSync(join(dataDir, 'keys', 'device-ca.2.sealed.json')), {
          timeout: 5000,
          interval: 100,
        })
        .toBe(true);
      await expect
        .poll(() => logged.some((line) => line.includes('device CA generation created')), { timeout: 1000 })
        .toBe(true);
    } finally {
      await app.close();
    }
  });

  it('issues access tokens for OTTER_DEVICE_TOKEN_TTL when created without options', async () => {
    const config = loadConfig({
      OTTER_DATA_DIR: mkdtempSync(join(tmpdir(), 'otter-identity-module-')),
      REDIS_URL: redisUrl,
      OTTER_QUEUE_PREFIX: queuePrefix,
      OTTER_DEVICE_TOKEN_TTL: '1234',
    });
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), IdentityModule.forRoot()],
    })
      .setLogger(capture)
      .compile();
    const app = await moduleRef.init();
    const jkt = jwkThumbprint(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey);
    const before = Date.now();
    const { token, expiresAt } = await app.get(DeviceTokenService).issueAccessToken(randomUUID(), jkt);
    const claims = decodeJwt(token);
    expect(claims.exp! - claims.iat!).toBe(1234);
    expect(expiresAt.getTime() - before).toBeGreaterThanOrEqual(1233_000);
    expect(expiresAt.getTime() - before).toBeLessThanOrEqual(1235_000);
    await app.close();
  });

  it('refuses to start on keys sealed with another passphrase', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'otter-identity-module-'));
    const app = await start(dataDir, 'first-passphrase-123');
    await app.close();
    await expect(start(dataDir, 'second-passphrase-456')).rejects.toThrow(/wrong OTTER_KEY_PASSPHRASE/);
  });

  it('shuts down cleanly when Redis was never used or cannot be reached', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'otter-identity-module-'));
    const idle = await start(dataDir, 'a-passphrase-for-this');
    const idleRedis = idle.get<Redis>(IDENTITY_REDIS);
    await idle.close();
    expect(idleRedis.status).toBe('end');

    const config = loadConfig({
      OTTER_DATA_DIR: dataDir,
      REDIS_URL: 'redis://127.0.0.1:1',
      OTTER_KEY_PASSPHRASE: 'a-passphrase-for-this',
    });
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), IdentityModule.forRoot()],
    })
      .setLogger(capture)
      .compile();
    const down = await moduleRef.init();
    // Fails closed: with no replay cache there is no device login.
    const tokens = down.get(DeviceTokenService);
    const node = { nodeId: randomUUID(), ...generateKeyPairSync('ec', { namedCurve: 'P-256' }) };
    const t = Math.floor(Date.now() / 1000);
    const assertion = await new SignJWT({ aud: 'otter:device-auth' })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(node.nodeId)
      .setSubject(node.nodeId)
      .setIssuedAt(t)
      .setExpirationTime(t + 60)
      .setJti(randomUUID())
      .sign(node.privateKey);
    await expect(
      tokens.verifyDeviceAssertion(assertion, { nodeId: node.nodeId, devicePublicKey: node.publicKey }),
    ).rejects.toThrow(/max retries/);
    const downRedis = down.get<Redis>(IDENTITY_REDIS);
    const attempts: string[] = [];
    await down.close();
    downRedis.on('reconnecting', () => attempts.push('reconnecting'));
    downRedis.on('connect', () => attempts.push('connect'));
    // ioredis waits 50 ms more per failed attempt; it had made a few, so a next one would come within 700 ms.
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(attempts).toEqual([]);
    expect(['end', 'reconnecting']).toContain(downRedis.status); // 'reconnecting' with its timer cleared
  });
});
