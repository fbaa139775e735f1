import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { createDatabase, migrateToLatest, seedNodeRow, testDatabases, type Db } from '#otter/db';
import { NodeHistoryLimits } from '#otter/retention';
import { NodeListRepository, type NodePageFilter } from './node-list.repository.js';
import { NodeRepository } from './node.repository.js';

// Pages of nodes on both dialects: every node exactly once across pages, in (created_at, id) order, while
// nodes are added; each filter alone and combined; the labels an operator sets are what the filter sees.
const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const NOW = Date.parse('2026-12-07T12:00:00.000Z');
const ago = (seconds: number): string => new Date(NOW - seconds * 1000).toISOString();

describe.each(dbs)('node list pages on $name', ({ config }) => {
  let db: Db;
  let list: NodeListRepository;
  let nodes: NodeRepository;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    list = new NodeListRepository(db);
    nodes = new NodeRepository(db, NodeHistoryLimits.over(db, loadConfig({})));
    // Three share one created_at: the id breaks the tie, so the order is total.
    const same = ago(5000);
    ids.fresh = await seedNodeRow(db, {
      hardwareId: 'rpi4',
      runningVersion: '1.0.0',
      labels: { site: 'north' },
      createdAt: same,
      lastSeenAt: ago(30),
      lastVerdict: { passed: true, at: ago(60) },
    });
    ids.stale = await seedNodeRow(db, {
      hardwareId: 'rpi4',
      runningVersion: '1.0.0',
      labels: { site: 'south' },
      createdAt: same,
      lastSeenAt: ago(3 * 86_400),
      lastVerdict: { passed: true, at: ago(2 * 86_400) },
    });
    ids.failed = await seedNodeRow(db, {
      hardwareId: 'x86',
      runningVersion: '2.0.0',
      labels: { site: 'north', tier: 'canary' },
      createdAt: same,
      lastSeenAt: ago(600),
      lastVerdict: { passed: false, at: ago(10) },
    });
    ids.never = await seedNodeRow(db, { hardwareId: 'x86', state: 'pending-approval', createdAt: ago(100) });
    for (let i = 0; i < 6; i++) ids[`bulk${i}`] = await seedNodeRow(db, { createdAt: ago(4000 - i) });
  });
  afterAll(async () => db?.destroy());

  async function all(filter: NodePageFilter, limit: number): Promise<string[]> {
    const seen: string[] = [];
    let after;
    for (;;) {
      const page = await list.page(filter, after, limit);
      expect(page.nodes.length).toBeLessThanOrEqual(limit);
      seen.push(...page.nodes.map((n) => n.id));
      if (!page.next) return seen;
      after = page.next;
    }
  }

  it('pages through every node once, oldest first, ties broken by id', async () => {
    const everyone = await all({}, 1000);
    expect(everyone).toHaveLength(10);
    const rows = await db.selectFrom('nodes').select(['id', 'created_at']).execute();
    const sorted = rows
      .sort((a, b) =>
        a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : a.id < b.id ? -1 : 1,
      )
      .map((r) => r.id);
    expect(everyone).toEqual(sorted);
    for (const size of [1, 3, 4]) expect(await all({}, size)).toEqual(sorted);
  });

  it('keeps its place while nodes are added behind it', async () => {
    const first = await list.page({}, undefined, 3);
    const added = await seedNodeRow(db, { createdAt: new Date(NOW).toISOString() });
    const rest = await all({}, 1000).then((ids) => ids.slice(3));
    const next = await list.page({}, first.next!, 1000);
    expect(next.nodes.map((n) => n.id)).toEqual(rest);
    expect(rest.at(-1)).toBe(added);
    await db.deleteFrom('nodes').where('id', '=', added).execute();
  });

  it.each<[string, NodePageFilter, string[]]>([
    ['hardware', { hardwareId: 'x86' }, ['failed', 'never']],
    ['state', { state: 'pending-approval' }, ['never']],
    ['running version', { runningVersion: '1.0.0' }, ['fresh', 'stale']],
    ['a label', { labels: [{ key: 'site', value: 'north' }] }, ['fresh', 'failed']],
    [
      'two labels',
      {
        labels: [
          { key: 'site', value: 'north' },
          { key: 'tier', value: 'canary' },
        ],
      },
      ['failed'],
    ],
    ['attestation passed', { attestation: { status: 'passed', freshSince: ago(86_400) } }, ['fresh']],
    ['attestation stale', { attestation: { status: 'stale', freshSince: ago(86_400) } }, ['stale']],
    ['attestation failed', { attestation: { status: 'failed', freshSince: ago(86_400) } }, ['failed']],
    ['seen within', { seenSince: ago(3600) }, ['fresh', 'failed']],
    ['not seen for', { notSeenSince: ago(86_400), runningVersion: '1.0.0' }, ['stale']],
    ['hardware and version', { hardwareId: 'rpi4', runningVersion: '2.0.0' }, []],
  ])('filters by %s', async (_, filter, expected) => {
    const found = await all(filter, 1);
    expect(found.sort()).toEqual(expected.map((k) => ids[k]!).sort());
  });

  it('counts a node never seen as not seen for any time, and one without a verdict as never attested', async () => {
    expect(await all({ notSeenSince: ago(60) }, 100)).toContain(ids.never);
    const never = await all({ attestation: { status: 'never', freshSince: ago(86_400) } }, 100);
    expect(never).toContain(ids.never);
    expect(never).not.toContain(ids.fresh);
  });

  it('finds a node by a prefix of its id', async () => {
    expect(await all({ idPrefix: ids.failed!.slice(0, 13) }, 10)).toEqual([ids.failed]);
  });

  it('filters by the labels an operator sets, not the ones the node had before', async () => {
    expect(await nodes.setLabels(ids.stale!, { site: 'north', tier: 'canary' })).toBe(true);
    expect(await all({ labels: [{ key: 'tier', value: 'canary' }] }, 10)).toEqual(
      expect.arrayContaining([ids.stale, ids.failed]),
    );
    expect(await all({ labels: [{ key: 'site', value: 'south' }] }, 10)).toEqual([]);
    expect(await nodes.setLabels(ids.stale!, {})).toBe(true);
    expect(await all({ labels: [{ key: 'site', value: 'north' }] }, 10)).not.toContain(ids.stale);
  });

  it('keeps the newest verdict on the node row as verdicts are added', async () => {
    await nodes.addVerdict({
      nodeId: ids.never!,
      passed: true,
      reason: 'ok',
      pcrValues: {},
      releaseVersion: null,
      releaseProven: false,
      mismatches: [],
    });
    const node = await nodes.get(ids.never!);
    expect(node?.lastVerdict).toMatchObject({ passed: true, reason: 'ok' });
    const failed = await all({ attestation: { status: 'passed', freshSince: ago(86_400) } }, 10);
    expect(failed).toContain(ids.never);
  });
});
