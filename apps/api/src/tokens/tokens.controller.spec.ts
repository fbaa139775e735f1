import 'reflect-metadata';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Controller, Get, type LoggerService } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthModule, CurrentPrincipal, RequireRole, TokenService, type Principal } from '#otter/auth';
import { ConfigModule, loadConfig } from '#otter/config';
import type { CreatedTokenDto, TokenListDto } from '#otter/contracts';
import { DbModule } from '#otter/db';
import { OtterExceptionFilter } from '#otter/errors';
import { TokensHttpModule } from './tokens-http.module.js';

/** A route for release engineers and up, to prove the role hierarchy through a real request. */
@Controller('test/release-engineer')
@RequireRole('release-engineer')
class ReleaseEngineerProbeController {
  @Get()
  whoami(@CurrentPrincipal() principal: Principal): Principal {
    return principal;
  }
}

/** Keeps every log line so the test can prove what the bootstrap logged, and what it did not. */
class CapturingLogger implements LoggerService {
  readonly lines: string[] = [];
  log(...parts: unknown[]): void {
    this.lines.push(parts.map(String).join(' '));
  }
  error(...parts: unknown[]): void {
    this.log(...parts);
  }
  warn(...parts: unknown[]): void {
    this.log(...parts);
  }
  debug(...parts: unknown[]): void {
    this.log(...parts);
  }
  verbose(...parts: unknown[]): void {
    this.log(...parts);
  }
  fatal(...parts: unknown[]): void {
    this.log(...parts);
  }
}

describe('management API tokens', () => {
  const logger = new CapturingLogger();
  let dataDir: string;
  let app: NestFastifyApplication;
  let http: FastifyInstance;
  let tokens: TokenService;
  let adminToken: string;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'otter-tokens-'));
    const config = loadConfig({ OTTER_DATA_DIR: dataDir, OTTER_LOG_LEVEL: 'silent' });
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), DbModule, TokensHttpModule, AuthModule],
      controllers: [ReleaseEngineerProbeController],
      providers: [{ provide: APP_FILTER, useClass: OtterExceptionFilter }],
    }).compile();
    app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), { logger });
    await app.init();
    http = app.getHttpAdapter().getInstance();
    await http.ready();
    tokens = app.get(TokenService);
    adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  });

  afterAll(async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const call = (options: InjectOptions): Promise<LightMyRequestResponse> => http.inject(options);
  const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
  const snapshot = async (): Promise<string> => JSON.stringify((await tokens.list()).tokens);

  /** Runs an attack and proves it left the token table exactly as it was. */
  async function attack(options: InjectOptions): Promise<LightMyRequestResponse> {
    const before = await snapshot();
    const res = await call(options);
    expect(await snapshot()).toBe(before);
    return res;
  }

  async function issue(name: string, role: 'viewer' | 'release-engineer' | 'admin'): Promise<string> {
    const res = await call({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: bearer(adminToken),
      payload: { name, role },
    });
    expect(res.statusCode).toBe(201);
    return res.json<CreatedTokenDto>().token;
  }

  it('bootstrapped an admin token file (0600) that works against the API, logging its path only', async () => {
    expect(statSync(join(dataDir, 'admin-token')).mode & 0o777).toBe(0o600);
    expect(logger.lines.filter((l) => l.includes(join(dataDir, 'admin-token')))).toHaveLength(1);
    expect(logger.lines.join('\n')).not.toContain(adminToken.slice(4));
    const res = await call({ method: 'GET', url: '/api/v1/tokens', headers: bearer(adminToken) });
    expect(res.statusCode).toBe(200);
    expect(res.json<TokenListDto>().tokens).toEqual([
      {
        id: expect.any(String),
        name: 'bootstrap-admin',
        role: 'admin',
        createdAt: expect.any(String),
        revokedAt: null,
      },
    ]);
  });

  it('creates a viewer token, lists it without any secret or hash, and revokes it', async () => {
    const created = await call({
      method: 'POST',
      url: '/api/v1/tokens',
      headers: bearer(adminToken),
      payload: { name: 'dashboard viewer', role: 'viewer' },
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const dto = created.json<CreatedTokenDto>();
    expect(dto).toEqual({
      id: expect.any(String),
      name: 'dashboard viewer',
      role: 'viewer',
      createdAt: expect.any(String),
      revokedAt: null,
      token: expect.stringMatching(/^otr_[A-Za-z0-9_-]{43}$/),
    });

    const listed = await call({ method: 'GET', url: '/api/v1/tokens', headers: bearer(adminToken) });
    expect(listed.statusCode).toBe(200);
    const entry = listed.json<TokenListDto>().tokens.find((t) => t.id === dto.id);
    expect(entry).toEqual({
      id: dto.id,
      name: 'dashboard viewer',
      role: 'viewer',
      createdAt: dto.createdAt,
      revokedAt: null,
    });
    expect(listed.body).not.toContain(dto.token);
    expect(listed.body).not.toMatch(/[0-9a-f]{64}/);

    // The new token works on a viewer route before revocation.
    expect((await tokens.authenticate(dto.token)).role).toBe('viewer');

    const revoked = await call({
      method: 'DELETE',
      url: `/api/v1/tokens/${dto.id}`,
      headers: bearer(adminToken),
    });
    expect(revoked.statusCode).toBe(204);
    expect(revoked.body).toBe('');
    const after = (await tokens.list()).tokens.find((t) => t.id === dto.id);
    expect(after?.revokedAt).toEqual(expect.any(String));
  });

  it('answers 404 when revoking an unknown id', async () => {
    const res = await attack({
      method: 'DELETE',
      url: '/api/v1/tokens/00000000-0000-4000-8000-000000000000',
      headers: bearer(adminToken),
    });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'NOT_FOUND' });
  });

  describe('refuses callers without a valid token (401)', () => {
    const requests: Array<[string, InjectOptions]> = [
      ['POST', { method: 'POST', url: '/api/v1/tokens', payload: { name: 'evil', role: 'admin' } }],
      ['GET', { method: 'GET', url: '/api/v1/tokens' }],
      ['DELETE', { method: 'DELETE', url: '/api/v1/tokens/00000000-0000-4000-8000-000000000000' }],
    ];

    it.each(requests)('%s with no Authorization header', async (_m, options) => {
      const res = await attack(options);
      expect(res.statusCode).toBe(401);
      expect(res.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    });

    it.each(requests)('%s with garbage and near-miss credentials', async (_m, options) => {
      for (const authorization of [
        'Bearer garbage',
        `Bearer otr_${'A'.repeat(43)}`,
        `Bearer ${adminToken}x`,
        `Bearer ${adminToken.slice(0, -1)}`,
        `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}`,
        adminToken, // no scheme
        'Bearer',
        `Bearer ${adminToken} ${adminToken}`,
        `Bearer ${'x'.repeat(8000)}`,
      ]) {
        const res = await attack({ ...options, headers: { authorization } });
        expect(res.statusCode, authorization.slice(0, 40)).toBe(401);
        expect(res.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
        expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      }
    });

    it('with a revoked token, answering exactly as for an unknown one', async () => {
      const { dto, token } = await tokens.create('soon revoked', 'admin');
      await tokens.revoke(dto.id);
      const revoked = await attack({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: bearer(token),
        payload: { name: 'evil', role: 'admin' },
      });
      const unknown = await attack({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: bearer(`otr_${'B'.repeat(43)}`),
        payload: { name: 'evil', role: 'admin' },
      });
      expect(revoked.statusCode).toBe(401);
      expect(revoked.body).toBe(unknown.body);
      expect(revoked.headers['www-authenticate']).toBe(unknown.headers['www-authenticate']);
    });

    it('before looking at the body', async () => {
      const res = await attack({ method: 'POST', url: '/api/v1/tokens', payload: { bogus: 1 } });
      expect(res.statusCode).toBe(401);
    });
  });

  describe('refuses lesser roles on admin endpoints (403)', () => {
    it.each(['viewer', 'release-engineer'] as const)('%s', async (role) => {
      const token = await issue(`a ${role}`, role);
      const victim = await tokens.create('victim', 'viewer');
      for (const options of [
        { method: 'POST', url: '/api/v1/tokens', payload: { name: 'escalate', role: 'admin' } },
        { method: 'GET', url: '/api/v1/tokens' },
        { method: 'DELETE', url: `/api/v1/tokens/${victim.dto.id}` },
      ] satisfies InjectOptions[]) {
        const res = await attack({ ...options, headers: bearer(token) });
        expect(res.statusCode).toBe(403);
        expect(res.json()).toMatchObject({ code: 'FORBIDDEN', message: expect.stringContaining('admin') });
        expect(res.body).not.toContain(victim.token);
      }
    });
  });

  describe('refuses bad bodies from an admin (400) and stores nothing', () => {
    const cases: Array<[string, InjectOptions['payload'], string | undefined, string]> = [
      ['malformed JSON', '{"name": "x", "role": ', 'application/json', ''],
      ['a JSON array', '[]', 'application/json', '(body)'],
      ['a JSON string', '"admin"', 'application/json', '(body)'],
      ['an empty JSON body', '', 'application/json', ''],
      ['JSON null', 'null', 'application/json', '(body)'],
      ['an unknown role', { name: 'x', role: 'root' }, undefined, 'role'],
      ['a role in other case', { name: 'x', role: 'Admin' }, undefined, 'role'],
      ['a missing role', { name: 'x' }, undefined, 'role'],
      ['a missing name', { role: 'viewer' }, undefined, 'name'],
      ['an empty name', { name: '', role: 'viewer' }, undefined, 'name'],
      ['an oversized name', { name: 'x'.repeat(65), role: 'viewer' }, undefined, 'name'],
      ['a huge name', { name: 'x'.repeat(100_000), role: 'viewer' }, undefined, 'name'],
      ['a name with forbidden characters', { name: 'a/b', role: 'viewer' }, undefined, 'name'],
      ['a name with a control character', { name: 'a\u0000b', role: 'viewer' }, undefined, 'name'],
      ['a numeric name', { name: 42, role: 'viewer' }, undefined, 'name'],
      ['an array name', { name: ['x'], role: 'viewer' }, undefined, 'name'],
      ['a numeric role', { name: 'x', role: 2 }, undefined, 'role'],
      ['an extra field', { name: 'x', role: 'viewer', tokenHash: 'f'.repeat(64) }, undefined, 'tokenHash'],
      ['an extra id', { name: 'x', role: 'viewer', id: 'mine' }, undefined, 'id'],
      [
        'a prototype key',
        '{"name":"x","role":"viewer","__proto__":{"role":"admin"}}',
        'application/json',
        '',
      ],
    ];

    it.each(cases)('%s', async (_label, payload, contentType, field) => {
      const headers: Record<string, string> = { ...bearer(adminToken) };
      if (contentType) headers['content-type'] = contentType;
      const res = await attack({ method: 'POST', url: '/api/v1/tokens', headers, payload });
      expect(res.statusCode).toBe(400);
      if (field) expect(res.json()).toMatchObject({ code: 'VALIDATION_FAILED', details: { field } });
      expect(
        res.json<{ details?: { reason?: unknown } }>().details?.reason ??
          res.json<{ message: string }>().message,
      ).toEqual(expect.any(String));
    });
  });

  it('refuses a body that is not JSON (415) and stores nothing', async () => {
    for (const [contentType, payload] of [
      ['application/x-www-form-urlencoded', 'name=x&role=admin'],
      ['text/plain', '{"name":"x","role":"admin"}'],
    ]) {
      const res = await attack({
        method: 'POST',
        url: '/api/v1/tokens',
        headers: { ...bearer(adminToken), 'content-type': contentType as string },
        payload,
      });
      expect(res.statusCode, contentType).toBe(415);
      expect(res.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE' });
    }
  });

  describe('applies the role hierarchy on a release-engineer route', () => {
    it.each(['admin', 'release-engineer'] as const)('%s passes and is the principal', async (role) => {
      const token = role === 'admin' ? adminToken : await issue('re', role);
      const res = await call({ method: 'GET', url: '/test/release-engineer', headers: bearer(token) });
      expect(res.statusCode).toBe(200);
      expect(res.json<Principal>()).toMatchObject({ role, tokenId: expect.any(String) });
    });

    it('viewer is refused with 403 naming the role', async () => {
      const token = await issue('just looking', 'viewer');
      const res = await call({ method: 'GET', url: '/test/release-engineer', headers: bearer(token) });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({
        code: 'FORBIDDEN',
        message: expect.stringContaining('release-engineer'),
      });
    });

    it('no token is refused with 401', async () => {
      const res = await call({ method: 'GET', url: '/test/release-engineer' });
      expect(res.statusCode).toBe(401);
    });
  });
});
