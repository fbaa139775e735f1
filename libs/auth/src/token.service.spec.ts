import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import { OtterError, ValidationError } from '#otter/errors';
import { ApiTokenRepository } from './api-token.repository.js';
import { TokenService } from './token.service.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (e: unknown) => e,
  );
}

async function expectUnauthenticated(promise: Promise<unknown>): Promise<void> {
  const error = await rejection(promise);
  expect(error).toBeInstanceOf(OtterError);
  expect((error as OtterError).code).toBe('UNAUTHENTICATED');
  expect((error as OtterError).message).toBe('invalid or revoked token');
}

describe.each(dbs)('TokenService on $name', ({ config }) => {
  let db: Db;
  let service: TokenService;

  beforeEach(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    await db.deleteFrom('api_tokens').execute();
    service = new TokenService(new ApiTokenRepository(db));
  });
  afterEach(async () => db.destroy());

  it('creates a token that authenticates as its name and role, and stores only its SHA-256', async () => {
    const { dto, token } = await service.create('ci deploy-1.0_x', 'release-engineer');
    expect(token).toMatch(/^otr_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(token.slice(4), 'base64url')).toHaveLength(32);
    expect(dto).toEqual({
      id: expect.any(String),
      name: 'ci deploy-1.0_x',
      role: 'release-engineer',
      createdAt: expect.any(String),
      revokedAt: null,
    });
    expect(await service.authenticate(token)).toEqual({
      tokenId: dto.id,
      name: 'ci deploy-1.0_x',
      role: 'release-engineer',
    });

    const rows = await db.selectFrom('api_tokens').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.token_hash).toBe(createHash('sha256').update(token).digest('hex'));
    // The secret (or its random part) appears in no column.
    const stored = JSON.stringify(rows);
    expect(stored).not.toContain(token);
    expect(stored).not.toContain(token.slice(4));
  });

  it('issues a different secret every time', async () => {
    const a = await service.create('same', 'viewer');
    const b = await service.create('same', 'viewer');
    expect(a.token).not.toBe(b.token);
    expect(a.dto.id).not.toBe(b.dto.id);
  });

  it('rejects unknown, malformed, tampered and revoked tokens with the same error', async () => {
    const { dto, token } = await service.create('victim', 'admin');
    const flipped = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    for (const bad of [
      'otr_' + 'A'.repeat(43),
      flipped,
      token + 'x',
      token.slice(0, -1),
      token.slice(4),
      `Bearer ${token}`,
      token.toUpperCase(),
      '',
      'x'.repeat(10_000),
      createHash('sha256').update(token).digest('hex'), // the stored hash is not a credential
    ]) {
      await expectUnauthenticated(service.authenticate(bad));
    }
    await service.revoke(dto.id);
    await expectUnauthenticated(service.authenticate(token));
  });

  it('lists every token with its revocation time and never a hash or secret', async () => {
    const viewer = await service.create('viewer-1', 'viewer');
    const admin = await service.create('admin-1', 'admin');
    await service.revoke(viewer.dto.id);
    const { tokens } = await service.list();
    expect(tokens.map((t) => t.id).sort()).toEqual([viewer.dto.id, admin.dto.id].sort());
    const revoked = tokens.find((t) => t.id === viewer.dto.id);
    expect(revoked?.revokedAt).toEqual(expect.any(String));
    expect(tokens.find((t) => t.id === admin.dto.id)?.revokedAt).toBeNull();
    for (const t of tokens)
      expect(Object.keys(t).sort()).toEqual(['createdAt', 'id', 'name', 'revokedAt', 'role']);
    const listed = JSON.stringify(tokens);
    expect(listed).not.toContain(viewer.token);
    expect(listed).not.toContain(admin.token);
    expect(listed).not.toContain(createHash('sha256').update(admin.token).digest('hex'));
  });

  it('revokes once: a second revoke keeps the first time; an unknown id is NOT_FOUND', async () => {
    const { dto } = await service.create('t', 'viewer');
    await service.revoke(dto.id);
    const first = (await service.list()).tokens[0]?.revokedAt;
    await new Promise((r) => setTimeout(r, 5));
    await service.revoke(dto.id);
    expect((await service.list()).tokens[0]?.revokedAt).toBe(first);
    const error = await rejection(service.revoke('00000000-0000-4000-8000-000000000000'));
    expect(error).toBeInstanceOf(OtterError);
    expect((error as OtterError).code).toBe('NOT_FOUND');
  });

  it('refuses invalid names and roles with a reason, storing nothing', async () => {
    const cases: Array<[string, string, string]> = [
      ['', 'viewer', 'name'],
      ['x'.repeat(65), 'viewer', 'name'],
      ['semi;colon', 'viewer', 'name'],
      ['new\nline', 'viewer', 'name'],
      ['ünïcode', 'viewer', 'name'],
      ['<script>', 'viewer', 'name'],
      ['ok', 'root', 'role'],
      ['ok', 'Admin', 'role'],
      ['ok', '', 'role'],
    ];
    for (const [name, role, field] of cases) {
      const error = await rejection(service.create(name, role as 'viewer'));
      expect(error, `${JSON.stringify(name)} / ${role}`).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).details).toMatchObject({ field, reason: expect.any(String) });
    }
    expect((await service.create('x'.repeat(64), 'viewer')).dto.name).toHaveLength(64);
    expect((await service.list()).tokens).toHaveLength(1);
  });

  describe('bootstrap admin token', () => {
    let dataDir: string;
    beforeEach(() => {
      // A directory that does not exist yet: bootstrap must create it.
      dataDir = join(mkdtempSync(join(tmpdir(), 'otter-auth-')), 'nested', 'data');
    });
    afterEach(() => rmSync(join(dataDir, '..', '..'), { recursive: true, force: true }));

    it('creates the file once, mode 0600, holding a working admin token, and never again', async () => {
      expect(await service.ensureBootstrapAdminToken(dataDir)).toBe(true);
      const file = join(dataDir, 'admin-token');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const token = readFileSync(file, 'utf8').trim();
      expect(await service.authenticate(token)).toMatchObject({ name: 'bootstrap-admin', role: 'admin' });

      expect(await service.ensureBootstrapAdminToken(dataDir)).toBe(false);
      expect(readFileSync(file, 'utf8').trim()).toBe(token);
      expect((await service.list()).tokens).toHaveLength(1);
      // No temporary file is left behind.
      expect(readdir(dataDir)).toEqual(['admin-token']);
    });

    it('does nothing when an admin exists but the file was removed', async () => {
      expect(await service.ensureBootstrapAdminToken(dataDir)).toBe(true);
      rmSync(join(dataDir, 'admin-token'));
      expect(await service.ensureBootstrapAdminToken(dataDir)).toBe(false);
      expect(existsSync(join(dataDir, 'admin-token'))).toBe(false);
      expect((await service.list()).tokens).toHaveLength(1);
    });

    it('does nothing when an admin token was created through the API', async () => {
      await service.create('ops', 'admin');
      expect(await service.ensureBootstrapAdminToken(dataDir)).toBe(false);
      expect(existsSync(dataDir)).toBe(false);
    });

    it('is not satisfied by lesser roles or revoked admins, and replaces a stale file', async () => {
      await service.create('v', 'viewer');
      await service.create('r', 'release-engineer');
      const revoked = await service.create('old admin', 'admin');
      await service.revoke(revoked.dto.id);
      expect(await service.ensureBootstrapAdminToken(dataDir)).toBe(true);
      const first = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();

      const bootstrap = (await service.list()).tokens.find((t) => t.name === 'bootstrap-admin');
      await service.revoke(bootstrap?.id ?? '');
      expect(await service.ensureBootstrapAdminToken(dataDir)).toBe(true);
      const second = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
      expect(second).not.toBe(first);
      expect(statSync(join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
      await expectUnauthenticated(service.authenticate(first));
      expect((await service.authenticate(second)).role).toBe('admin');
    });
  });
});

function readdir(dir: string): string[] {
  return readdirSync(dir).sort();
}
