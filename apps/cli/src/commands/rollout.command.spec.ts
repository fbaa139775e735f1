import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreatedTokenDto, NodeDto, RolloutDto, RolloutNodeDto, Role } from '#otter/contracts';
import { RolloutTicker } from '#otter/rollouts';
import { RolloutFixtures } from '../../../api/src/rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../../../api/src/testing/api-harness.js';
import type { CliContext } from '../cli-context.js';
import { runCli } from '../main.js';

// `otter rollout ...` and `otter node label` against the real api: output, exit codes (2 for a bad command
// line, with no request made; 1 with the server's reason for a refusal), and what the api stored. Releases,
// nodes and verdicts are rows; the scheduler's tick is driven by hand.
let api: ApiHarness;
let adminToken: string;
let fixtures: RolloutFixtures;
let ticker: RolloutTicker;
const cwd = mkdtempSync(join(tmpdir(), 'otter-rollout-cli-'));

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

async function otter(args: string[], token: string = adminToken): Promise<Run> {
  const stdout = new Capture();
  const stderr = new Capture();
  const ctx: CliContext = { env: { OTTER_SERVER: api.url, OTTER_TOKEN: token }, cwd, stdout, stderr };
  const code = await runCli(args, ctx);
  return { code, stdout: stdout.text, stderr: stderr.text };
}

async function tokenWithRole(role: Role): Promise<string> {
  const run = await otter(['token', 'create', '--name', `${role}-${randomUUID()}`, '--role', role]);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as CreatedTokenDto).token;
}

// Each test its own hardware id, so rollouts of different tests never share nodes.
let counter = 0;
async function fleet(size: number): Promise<{ hw: string; nodes: string[] }> {
  const hw = `board-${++counter}`;
  await fixtures.release(hw, '1.0.0');
  await fixtures.release(hw, '2.0.0');
  const nodes: string[] = [];
  for (let i = 0; i < size; i++) nodes.push(await fixtures.node(hw, '1.0.0'));
  return { hw, nodes };
}

async function rolloutCount(): Promise<number> {
  return (await api.db.selectFrom('rollouts').select('id').execute()).length;
}

async function storedLabels(id: string): Promise<unknown> {
  const row = await api.db
    .selectFrom('nodes')
    .select('labels')
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return JSON.parse(row.labels);
}

/** `rollout create` with everything required; `extra` adds or overrides. */
function create(hw: string, ...extra: string[]): string[] {
  return [
    'rollout',
    'create',
    '--hardware',
    hw,
    '--version',
    '2.0.0',
    '--success',
    '0.9',
    '--failure',
    '20%',
    '--max-attestation-age',
    '10m',
    ...extra,
  ];
}

const idOf = (run: Run): string => run.stdout.split(':')[0]!;

beforeAll(async () => {
  api = await startApi({
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
  });
  adminToken = (await readFile(join(api.config.dataDir, 'admin-token'), 'utf8')).trim();
  fixtures = new RolloutFixtures(api);
  ticker = api.app.get(RolloutTicker);
});
afterAll(async () => {
  await api?.close();
});

describe('otter node label', () => {
  it('replaces the label set; node list shows it as a column and in --json; --clear removes it', async () => {
    const { nodes } = await fleet(1);
    const id = nodes[0]!;
    expect(await otter(['node', 'label', id, 'site=north', 'rack=r-12'])).toEqual({
      code: 0,
      stdout: `${id}: site=north,rack=r-12\n`,
      stderr: '',
    });
    expect(await storedLabels(id)).toEqual({ site: 'north', rack: 'r-12' });

    const table = (await otter(['node', 'list'])).stdout.trimEnd().split('\n');
    expect(table[0]).toMatch(/\sENROLLED\s+LABELS$/);
    expect(table.find((l) => l.startsWith(id))).toMatch(/\ssite=north,rack=r-12$/);
    const json = JSON.parse((await otter(['node', 'list', '--json'])).stdout) as { nodes: NodeDto[] };
    expect(json.nodes.find((n) => n.id === id)?.labels).toEqual({ site: 'north', rack: 'r-12' });

    // The whole set is replaced: rack is gone.
    expect((await otter(['node', 'label', id, 'site=south'])).stdout).toBe(`${id}: site=south\n`);
    expect(await storedLabels(id)).toEqual({ site: 'south' });
    expect(await otter(['node', 'label', id, '--clear'])).toMatchObject({
      code: 0,
      stdout: `${id}: no labels\n`,
    });
    expect(await storedLabels(id)).toEqual({});
  });

  it('refuses bad labels with exit code 2 before any request; a viewer gets the 403 with exit code 1', async () => {
    const { nodes } = await fleet(1);
    const id = nodes[0]!;
    await otter(['node', 'label', id, 'site=north']);
    const bad: Array<[string[], RegExp]> = [
      [['site'], /value 'site' is invalid for argument 'labels'\. expected key=value/],
      [['site=a b'], /bad label value "a b"/],
      [['.site=a'], /bad label key ".site"/],
      [['-site=a'], /unknown option '-site=a'/],
      [['site=a', 'site=b'], /label site is given twice/],
      [[], /give key=value pairs, or --clear/],
      [['--clear', 'site=a'], /not both/],
      [Array.from({ length: 33 }, (_, i) => `k${i}=v`), /at most 32 labels/],
    ];
    for (const [args, message] of bad) {
      const run = await otter(['node', 'label', id, ...args]);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(message);
    }
    expect(await storedLabels(id)).toEqual({ site: 'north' });

    const viewer = await tokenWithRole('viewer');
    const refused = await otter(['node', 'label', id, 'site=east'], viewer);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(/^error: 403 FORBIDDEN: /);
    expect(await storedLabels(id)).toEqual({ site: 'north' });
    const unknown = await otter(['node', 'label', randomUUID(), 'site=east']);
    expect(unknown).toMatchObject({ code: 1, stderr: 'error: 404 NODE_NOT_FOUND: no such node\n' });
  });
});

describe('otter rollout', () => {
  it('create for a release without reference measurements says why (exit 1), with or without --start; nothing stored', async () => {
    const hw = `board-${++counter}`;
    await fixtures.release(hw, '2.0.0', {});
    const node = await fixtures.node(hw, '1.0.0');
    await fixtures.verdict(node, true, new Date());
    const before = await rolloutCount();
    for (const start of [[], ['--start']]) {
      const run = await otter(create(hw, '--wave', '100%', ...start));
      expect(run).toMatchObject({ code: 1, stdout: '' });
      expect(run.stderr).toBe(
        `error: 422 ROLLOUT_RELEASE_UNMEASURED: release 2.0.0 for ${hw} has no signed reference measurements, ` +
          "so no node could prove it booted it: a rollout needs the release's reference value of a PCR it " +
          'changes, outside the pinned PCRs 0, 1, 2, 3, 4, 5, 6, 7 (publish it with `otter release push ' +
          '--measurements FILE`)\n' +
          `  details: {"hardwareId":"${hw}","version":"2.0.0","measuredPcrs":[],"pinnedPcrs":[0,1,2,3,4,5,6,7]}\n`,
      );
    }
    expect(await rolloutCount()).toBe(before);
  });

  it('create --start takes the labelled nodes; show prints state and per-wave progress; list and nodes agree', async () => {
    const { hw, nodes } = await fleet(5);
    const [south, ...north] = nodes;
    for (const n of north) expect((await otter(['node', 'label', n, 'site=north'])).code).toBe(0);
    await otter(['node', 'label', south!, 'site=south']);
    for (const n of nodes) await fixtures.verdict(n, true, new Date());

    const run = await otter(
      create(
        hw,
        '--label',
        'site=north',
        '--wave',
        '1',
        '--wave',
        '25%:1h',
        '--wave',
        '100%',
        '--soak',
        '90s',
        '--start',
      ),
      await tokenWithRole('release-engineer'),
    );
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^[0-9a-f-]{36}: running\n$/);
    const id = idOf(run);

    const dto = JSON.parse((await otter(['rollout', 'show', id, '--json'])).stdout) as RolloutDto;
    expect(dto).toMatchObject({
      name: `${hw} 2.0.0`,
      hardwareId: hw,
      version: '2.0.0',
      state: 'running',
      selector: { labels: { site: 'north' } },
      waves: [
        { count: 1, soakSeconds: 90 },
        { percent: 25, soakSeconds: 3600 },
        { percent: 100, soakSeconds: 90 },
      ],
      successThreshold: 0.9,
      failureThreshold: 0.2,
      maxAttestationAgeSeconds: 600,
      maintenanceWindow: null,
      maxConcurrent: null,
    });
    expect(dto.progress.map((w) => w.size)).toEqual([1, 1, 2]);

    const members = JSON.parse((await otter(['rollout', 'nodes', id, '--json'])).stdout) as {
      nodes: RolloutNodeDto[];
    };
    expect(members.nodes.map((n) => n.nodeId).sort()).toEqual([...north].sort());

    await ticker.tickRollout(id);
    const show = await otter(['rollout', 'show', id]);
    expect(show).toMatchObject({ code: 0, stderr: '' });
    expect(show.stdout).toContain(`id:           ${id}\n`);
    expect(show.stdout).toMatch(/^release: +board-\d+ 2\.0\.0$/m);
    expect(show.stdout).toMatch(/^state: +running$/m);
    expect(show.stdout).toMatch(/^reason: +-$/m);
    expect(show.stdout).toMatch(/^wave: +1 of 3, started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/m);
    expect(show.stdout).toMatch(new RegExp(`^nodes: +active ${hw} nodes with site=north$`, 'm'));
    expect(show.stdout).toMatch(/^thresholds: +success 90%, failure 20%$/m);
    expect(show.stdout).toMatch(/^attestation: +at most 10m old$/m);
    expect(show.stdout).toMatch(/^deadline: +1h per node$/m);
    const table = show.stdout.split('\n\n')[1]!.trimEnd().split('\n');
    expect(table[0]).toMatch(
      /^WAVE\s+TARGET\s+SOAK\s+SIZE\s+PENDING\s+IN PROGRESS\s+SUCCEEDED\s+FAILED\s+QUARANTINED\s+EXCLUDED$/,
    );
    expect(table.slice(1)).toEqual([
      expect.stringMatching(/^1\s+1 node\s+90s\s+1\s+0\s+1\s+0\s+0\s+0\s+0$/),
      expect.stringMatching(/^2\s+25%\s+1h\s+1\s+1\s+0\s+0\s+0\s+0\s+0$/),
      expect.stringMatching(/^3\s+100%\s+90s\s+2\s+2\s+0\s+0\s+0\s+0\s+0$/),
    ]);

    const list = (await otter(['rollout', 'list'])).stdout.trimEnd().split('\n');
    expect(list[0]).toMatch(/^ID\s+NAME\s+HARDWARE\s+VERSION\s+STATE\s+WAVE\s+SUCCEEDED\s+FAILED\s+CREATED$/);
    expect(list.find((l) => l.startsWith(id))).toMatch(
      new RegExp(`\\s${hw}\\s+2\\.0\\.0\\s+running\\s+1/3\\s+0/4\\s+0\\s`),
    );
    const listed = JSON.parse((await otter(['rollout', 'list', '--json'])).stdout) as {
      rollouts: RolloutDto[];
    };
    expect(listed.rollouts.find((r) => r.id === id)?.state).toBe('running');

    const table2 = (await otter(['rollout', 'nodes', id])).stdout.trimEnd().split('\n');
    expect(table2[0]).toMatch(/^NODE\s+WAVE\s+STATE\s+FROM\s+UPDATED\s+REASON$/);
    expect(table2.filter((l) => /\s1\s+assigned\s+1\.0\.0\s/.test(l))).toHaveLength(1);
    expect(table2.filter((l) => /\s[23]\s+pending\s+-\s/.test(l))).toHaveLength(3);
  });

  it('a draft until started; pause shows its reason, resume runs again; a refused transition prints the 409', async () => {
    const { hw, nodes } = await fleet(2);
    const created = await otter(
      create(
        hw,
        '--name',
        'canary',
        '--node',
        nodes[0]!,
        '--wave',
        '100%',
        '--window',
        '22:00-04:00',
        '--max-concurrent',
        '1',
        '--deadline',
        '30m',
      ),
    );
    expect(created.stdout).toMatch(/: draft\n$/);
    const id = idOf(created);
    const draft = await otter(['rollout', 'show', id]);
    expect(draft.stdout).toMatch(/^name: +canary$/m);
    expect(draft.stdout).toMatch(/^wave: +- of 1$/m);
    expect(draft.stdout).toMatch(new RegExp(`^nodes: +active ${hw} nodes with 1 listed node\\(s\\)$`, 'm'));
    expect(draft.stdout).toMatch(/^window: +22:00-04:00 UTC$/m);
    expect(draft.stdout).toMatch(/^concurrency: +at most 1 updating$/m);
    expect(draft.stdout).toMatch(/^deadline: +30m per node$/m);
    expect(await otter(['rollout', 'nodes', id])).toEqual({
      code: 0,
      stdout: '',
      stderr: 'no nodes (a draft takes its nodes when it starts)\n',
    });

    expect(await otter(['rollout', 'start', id])).toEqual({
      code: 0,
      stdout: `${id}: running\n`,
      stderr: '',
    });
    const paused = await otter(['rollout', 'pause', id, '--reason', 'looking at wave 1']);
    expect(paused).toMatchObject({ code: 0, stderr: '' });
    expect(paused.stdout).toMatch(new RegExp(`^${id}: paused \\(paused by .+: looking at wave 1\\)\\n$`));
    expect((await otter(['rollout', 'show', id])).stdout).toMatch(
      /^reason: +paused by .+: looking at wave 1$/m,
    );

    expect(await otter(['rollout', 'pause', id])).toEqual({
      code: 1,
      stdout: '',
      stderr: expect.stringMatching(/^error: 409 ROLLOUT_STATE_INVALID: .*paused/) as unknown as string,
    });
    expect(await otter(['rollout', 'resume', id])).toEqual({
      code: 0,
      stdout: `${id}: running\n`,
      stderr: '',
    });
    expect((await otter(['rollout', 'show', id])).stdout).toMatch(/^state: +running$/m);
  });

  it('exclude takes a node out with its reason; abort ends the rollout', async () => {
    const { hw, nodes } = await fleet(2);
    const id = idOf(await otter(create(hw, '--wave', '100%', '--start')));
    const excluded = await otter(['rollout', 'exclude', id, nodes[0]!, '--reason', 'bad board']);
    expect(excluded).toMatchObject({ code: 0, stderr: '' });
    expect(excluded.stdout).toMatch(new RegExp(`^${nodes[0]}: excluded \\(excluded by .+: bad board\\)\\n$`));
    const noReason = await otter(['rollout', 'exclude', id, nodes[1]!]);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toMatch(/required option '--reason <text>' not specified/);

    const aborted = await otter(['rollout', 'abort', id, '--reason', 'wrong release']);
    expect(aborted.stdout).toMatch(new RegExp(`^${id}: aborted \\(aborted by .+: wrong release\\)\\n$`));
    const states = JSON.parse((await otter(['rollout', 'nodes', id, '--json'])).stdout) as {
      nodes: RolloutNodeDto[];
    };
    expect(Object.fromEntries(states.nodes.map((n) => [n.nodeId, n.state]))).toEqual({
      [nodes[0]!]: 'excluded',
      [nodes[1]!]: 'cancelled',
    });
  });

  it('refuses a bad command line with exit code 2 and makes no request', async () => {
    const { hw } = await fleet(1);
    const before = await rolloutCount();
    const bad: Array<[string[], RegExp]> = [
      [
        create(hw, '--wave', 'ten%'),
        /option '--wave <spec>' argument 'ten%' is invalid\. expected PERCENT% or COUNT/,
      ],
      [create(hw, '--wave', '150%'), /at most 100%/],
      [create(hw, '--wave', '10%:soon'), /'10%:soon' is invalid\. expected seconds/],
      [create(hw, '--wave', '0'), /at least 1 node/],
      [create(hw), /required option '--wave <spec>' not specified/],
      [create(hw, '--wave', '100%', '--success', '1.5'), /'--success <share>' argument '1.5' is invalid/],
      [create(hw, '--wave', '100%', '--window', '22-04'), /HH:MM-HH:MM/],
      [create(hw, '--wave', '100%', '--max-concurrent', '0'), /at least 1/],
      [create(hw, '--wave', '100%', '--label', 'site'), /expected key=value/],
      [create(hw, '--wave', '100%', '--label', 'a=1', '--label', 'a=2'), /label a is given twice/],
      [create('Bad/HW', '--wave', '100%'), /is not a hardware id/],
      [create(hw, '--wave', '100%', '--surprise'), /unknown option '--surprise'/],
      [['rollout', 'start'], /missing required argument 'id'/],
      [['rollout', 'start', randomUUID(), '--reason', 'x'], /unknown option '--reason'/],
      [['rollout', 'frobnicate'], /unknown command 'frobnicate'/],
    ];
    for (const [args, message] of bad) {
      const run = await otter(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout, args.join(' ')).toBe('');
      expect(run.stderr, args.join(' ')).toMatch(message);
    }
    expect(await rolloutCount()).toBe(before);
    expect((await otter(['rollout', '--help'])).code).toBe(0);
  });

  it("prints the server's refusal with its reason and exit code 1", async () => {
    const { hw } = await fleet(1);
    const unknown = await otter([...create(hw, '--wave', '100%'), '--version', '9.9.9']);
    expect(unknown).toEqual({
      code: 1,
      stdout: '',
      stderr: `error: 400 ROLLOUT_INVALID: no release 9.9.9 for hardware ${hw}: upload it first\n`,
    });
    const soak = await otter(create(hw, '--wave', '100%:31d'));
    expect(soak.code).toBe(1);
    expect(soak.stderr).toMatch(
      /^error: 400 VALIDATION_FAILED: invalid request body: waves\.0\.soakSeconds: /,
    );

    // Nothing matches the selector: created, then refused at start; the draft is kept and said so.
    const before = await rolloutCount();
    const none = await otter(create(hw, '--wave', '100%', '--label', 'site=nowhere', '--start'));
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/^rollout [0-9a-f-]{36} was created but not started; it stays a draft\n/);
    expect(none.stderr).toMatch(/error: 400 ROLLOUT_INVALID: the selector matches no active node\n$/);
    expect(await rolloutCount()).toBe(before + 1);

    const viewer = await tokenWithRole('viewer');
    const forbidden = await otter(create(hw, '--wave', '100%'), viewer);
    expect(forbidden).toMatchObject({ code: 1, stdout: '' });
    expect(forbidden.stderr).toMatch(/^error: 403 FORBIDDEN: /);
    expect((await otter(['rollout', 'show', randomUUID()])).stderr).toMatch(
      /^error: 404 ROLLOUT_NOT_FOUND: /,
    );
  });
});
