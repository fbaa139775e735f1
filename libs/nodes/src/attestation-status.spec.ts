import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTESTATION_STATUSES, type AttestationStatus } from '#otter/contracts';
import { createDatabase, migrateToLatest, seedNodeRow, testDatabases, type Db } from '#otter/db';
import { attestationStatus, freshSince, type LastVerdict } from './attestation-status.js';
import { NodeFleetRepository } from './node-fleet.repository.js';
import { NodeListRepository } from './node-list.repository.js';

// One definition of a node's attestation status, judged three ways: the node detail (attestationStatus), the
// node list filter and the otter_nodes counts (both SQL). Nodes sit on each side of the freshness boundary;
// all three must put every node in the same status, on both dialects.
const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const NOW = Date.parse('2026-12-07T12:00:00.000Z');
const FRESHNESS = 3600;
const at = (msAgo: number): string => new Date(NOW - msAgo).toISOString();

const CASES: Array<[string, LastVerdict | null, AttestationStatus]> = [
  ['passed a minute ago', { passed: true, at: at(60_000) }, 'passed'],
  ['passed exactly at the freshness', { passed: true, at: at(FRESHNESS * 1000) }, 'passed'],
  ['passed a millisecond too long ago', { passed: true, at: at(FRESHNESS * 1000 + 1) }, 'stale'],
  ['passed days ago', { passed: true, at: at(3 * 86_400_000) }, 'stale'],
  ['failed just now', { passed: false, at: at(1000) }, 'failed'],
  [
    'failed days ago (a failure does not age into stale)',
    { passed: false, at: at(3 * 86_400_000) },
    'failed',
  ],
  ['never attested', null, 'never'],
];

it.each(CASES)('a node that %s is %s in its detail', (_, last, status) => {
  expect(attestationStatus(last, FRESHNESS, NOW)).toBe(status);
});

describe.each(dbs)('attestation status in SQL on $name', ({ config }) => {
  let db: Db;
  const hardware = 'status-hw';
  const expected = new Map<string, AttestationStatus>();

  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    for (const [, last, status] of CASES) {
      const id = await seedNodeRow(db, { hardwareId: hardware, runningVersion: '1.0.0', lastVerdict: last });
      expected.set(id, status);
    }
  });
  afterAll(async () => db?.destroy());

  it('the node list filter finds each node under its detail’s status, and under no other', async () => {
    const list = new NodeListRepository(db);
    for (const status of ATTESTATION_STATUSES) {
      const page = await list.page(
        { hardwareId: hardware, attestation: { status, freshSince: freshSince(FRESHNESS, NOW) } },
        undefined,
        100,
      );
      const want = [...expected].filter(([, s]) => s === status).map(([id]) => id);
      expect(page.nodes.map((n) => n.id).sort(), status).toEqual(want.sort());
    }
  });

  it('the fleet counts give every status of the group, the same nodes in each', async () => {
    const counts = await new NodeFleetRepository(db).counts(freshSince(FRESHNESS, NOW));
    const mine = counts.filter((c) => c.hardwareId === hardware);
    expect(Object.fromEntries(mine.map((c) => [c.attestation, c.nodes]))).toEqual({
      passed: 2,
      stale: 2,
      failed: 2,
      never: 1,
    });
    expect(mine.every((c) => c.state === 'active' && c.runningVersion === '1.0.0')).toBe(true);
  });
});
