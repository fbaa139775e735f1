import 'reflect-metadata';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditListDto, CreatedTokenDto } from '#otter/contracts';
import { startApi, type ApiHarness } from '../../../api/src/testing/api-harness.js';
import { RAW_TERMINAL_CONTROL, runOtter } from '../testing/cli-run.js';
import { parseSince } from './audit.command.js';

// `otter audit list` against the real api.
let api: ApiHarness;
let admin: string;
const cwd = mkdtempSync(join(tmpdir(), 'otter-audit-cli-'));
const otter = (args: string[], token = admin) => runOtter(args, api.url, token, cwd);

beforeAll(async () => {
  api = await startApi();
  admin = (await readFile(join(api.config.dataDir, 'admin-token'), 'utf8')).trim();
});
afterAll(async () => api?.close());

describe('otter audit list', () => {
  it('lists the rows of management changes, filtered, as a table or JSON', async () => {
    const created = await otter(['token', 'create', '--name', 'ci-audit', '--role', 'viewer']);
    expect(created.code, created.stderr).toBe(0);
    const token = JSON.parse(created.stdout) as CreatedTokenDto;

    const json = await otter(['audit', 'list', '--action', 'token.created', '--since', '1h', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect((JSON.parse(json.stdout) as AuditListDto).entries).toMatchObject([
      {
        action: 'token.created',
        target: { kind: 'token', id: token.id },
        outcome: 'ok',
        actor: { role: 'admin' },
      },
    ]);

    const table = await otter(['audit', 'list', '--target', `token:${token.id}`]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(/ACTION/);
    expect(table.stdout).toContain(`token:${token.id}`);
    expect(table.stdout).toContain('bootstrap-admin (admin)');

    // The viewer may not read the log; the refusal is itself on the record.
    const refused = await otter(['audit', 'list'], token.token);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/admin/);
    const rows = await otter(['audit', 'list', '--actor', token.id, '--json']);
    expect((JSON.parse(rows.stdout) as AuditListDto).entries[0]).toMatchObject({
      action: 'api.read',
      outcome: 'refused-403',
    });
  });

  it('escapes terminal controls in what it prints', async () => {
    // A name no token may have today, as a row an older version (or a restored backup) could hold.
    await api.db
      .insertInto('audit_log')
      .values({
        at: new Date().toISOString(),
        actor_token_id: 'old-token',
        actor_name: 'evil\u001b]0;pwned\u0007\u001b[2J',
        actor_role: 'admin',
        action: 'node.approved',
        target_kind: 'node',
        target_id: 'esc-node',
        request_id: null,
        source: '127.0.0.1',
        outcome: 'ok',
        changes: JSON.stringify({ labels: { note: '\u001b[31mred' } }),
      })
      .execute();
    const table = await otter(['audit', 'list', '--target', 'node:esc-node']);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain('evil');
    expect(table.stdout).not.toMatch(RAW_TERMINAL_CONTROL);
  });

  it('refuses bad options before asking the server (exit 2), and reports the server’s 400s', async () => {
    for (const args of [
      ['--action', 'node.exploded'],
      ['--since', 'yesterday'],
      ['--limit', '0'],
      ['--limit', '501'],
    ]) {
      const run = await otter(['audit', 'list', ...args]);
      expect(run.code, args.join(' ')).toBe(2);
    }
    const badTarget = await otter(['audit', 'list', '--target', 'planet:earth']);
    expect(badTarget.code).toBe(1);
    expect(badTarget.stderr).toMatch(/target/);
  });

  it('reads --since as a duration back from now or an ISO time', () => {
    const now = new Date('2026-12-07T12:00:00Z');
    expect(parseSince('2h', now)).toBe('2026-12-07T10:00:00.000Z');
    expect(parseSince('7d', now)).toBe('2026-11-30T12:00:00.000Z');
    expect(parseSince('2026-12-01T00:00:00Z', now)).toBe('2026-12-01T00:00:00Z');
  });
});
