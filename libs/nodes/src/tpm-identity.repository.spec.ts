import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { NodeHistoryLimits } from '#otter/retention';
import { createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import { EnrollmentRepository } from './enrollment.repository.js';
import { NODE_TRANSITIONS } from './node-transitions.js';
import { NodeRepository, type NewNode, type NodeRecord } from './node.repository.js';

// What the TPM identity rests on in the database, on both dialects: the unique names of a TPM, the
// re-enrollment window's compare-and-set, and the allow-list by issuer + serial.
const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const hex = (): string => randomBytes(32).toString('hex');

function newNode(overrides: Partial<NewNode> = {}): NewNode {
  return {
    hardwareId: 'rpi4',
    state: 'approved',
    ekPublicSha256: hex(),
    ekKeySha256: hex(),
    ekIssuerSerialSha256: hex(),
    ekCertSerial: randomBytes(4).toString('hex'),
    ekCertIssuer: 'CN=Test TPM Manufacturer',
    akPublic: randomBytes(90),
    pinnedPcrs: { '0': 'aa'.repeat(32) },
    runningVersion: '1.0.0',
    ...overrides,
  };
}

const reenrollment = (ekPublicSha256 = hex()) => ({
  ekPublicSha256,
  akPublic: randomBytes(90),
  pinnedPcrs: { '0': 'bb'.repeat(32) },
  runningVersion: '2.0.0',
  tpmCounters: { resetCount: 3, restartCount: 0, clock: 123_456n },
});

describe.each(dbs)('TPM identity in the database on $name', ({ config }) => {
  let db: Db;
  let nodes: NodeRepository;
  let enrollments: EnrollmentRepository;

  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    nodes = new NodeRepository(db, NodeHistoryLimits.over(db, loadConfig({})));
    enrollments = new EnrollmentRepository(db);
  });
  afterAll(async () => db?.destroy());

  /** A node enrollment creates, then moved to `state` the way Otter moves it (enrollment never creates these). */
  async function nodeIn(state: 'active' | 'revoked', overrides: Partial<NewNode> = {}): Promise<NodeRecord> {
    const node = (await nodes.create(newNode(overrides)))!;
    expect(await nodes.transition(node.id, NODE_TRANSITIONS.activate)).toBe(true);
    if (state === 'revoked') expect(await nodes.transition(node.id, NODE_TRANSITIONS.revoke)).toBe(true);
    return (await nodes.get(node.id))!;
  }

  it('creates no second node for a TPM already named by EK key, certificate or EK public area', async () => {
    const first = await nodeIn('revoked');
    expect(first).toMatchObject({ state: 'revoked', reenrollUntil: null });
    const count = async () => (await nodes.list()).length;
    const before = await count();
    for (const clash of [
      { ekKeySha256: first.ekKeySha256! },
      { ekIssuerSerialSha256: first.ekIssuerSerialSha256! },
      { ekPublicSha256: first.ekPublicSha256 },
    ]) {
      expect(await nodes.create(newNode(clash))).toBeUndefined();
    }
    expect(await count()).toBe(before);
    for (const name of [
      { ekKeySha256: first.ekKeySha256!, ekIssuerSerialSha256: hex(), ekPublicSha256: hex() },
      { ekKeySha256: hex(), ekIssuerSerialSha256: first.ekIssuerSerialSha256!, ekPublicSha256: hex() },
      { ekKeySha256: hex(), ekIssuerSerialSha256: hex(), ekPublicSha256: first.ekPublicSha256 },
    ]) {
      expect((await nodes.findTpmHolders(name)).map((n) => n.id)).toEqual([first.id]);
    }
    expect(
      await nodes.findTpmHolders({ ekKeySha256: hex(), ekIssuerSerialSha256: hex(), ekPublicSha256: hex() }),
    ).toEqual([]);
  });

  it('opens a re-enrollment window only in the given states, and completes it once, for that EK key, in time', async () => {
    const node = await nodeIn('active');
    const revoked = await nodeIn('revoked');
    const later = new Date(Date.now() + 60_000).toISOString();
    const states = ['pending-approval', 'approved', 'active'] as const;
    expect(await nodes.openReenrollment(revoked.id, { until: later, by: 'admin (token t)' }, states)).toBe(
      false,
    );
    expect(await nodes.openReenrollment(node.id, { until: later, by: 'admin (token t)' }, states)).toBe(true);
    expect(await nodes.get(node.id)).toMatchObject({ reenrollUntil: later, reenrollBy: 'admin (token t)' });

    const now = new Date().toISOString();
    const expected = { ekKeySha256: node.ekKeySha256!, fromState: 'active' as const, now };
    // Another TPM's key, a state that changed meanwhile, or a window already past: nothing changes.
    expect(
      await nodes.completeReenrollment(
        node.id,
        { ...expected, ekKeySha256: hex() },
        'approved',
        reenrollment(),
      ),
    ).toBe(false);
    expect(
      await nodes.completeReenrollment(
        node.id,
        { ...expected, fromState: 'approved' },
        'approved',
        reenrollment(),
      ),
    ).toBe(false);
    expect(
      await nodes.completeReenrollment(
        node.id,
        { ...expected, now: new Date(Date.now() + 120_000).toISOString() },
        'approved',
        reenrollment(),
      ),
    ).toBe(false);
    const untouched = await nodes.get(node.id);
    expect(untouched).toMatchObject({ state: 'active', akPublic: node.akPublic, reenrollUntil: later });

    const change = reenrollment();
    expect(await nodes.completeReenrollment(node.id, expected, 'approved', change)).toBe(true);
    expect(await nodes.get(node.id)).toMatchObject({
      id: node.id,
      state: 'approved',
      ekPublicSha256: change.ekPublicSha256,
      ekKeySha256: node.ekKeySha256,
      akPublic: change.akPublic,
      pinnedPcrs: change.pinnedPcrs,
      runningVersion: '2.0.0',
      tpmCounters: change.tpmCounters,
      devicePublic: null,
      deviceCertSerial: null,
      reenrollUntil: null,
      reenrollBy: null,
      createdAt: node.createdAt,
    });
    // Once: the window is closed.
    expect(
      await nodes.completeReenrollment(
        node.id,
        { ...expected, fromState: 'approved' },
        'approved',
        reenrollment(),
      ),
    ).toBe(false);
  });

  it('allows by issuer + serial or EK public area; a serial-only entry from before 0005 allows nothing', async () => {
    const tpm = { ekIssuerSerialSha256: hex(), ekPublicSha256: hex() };
    expect(await enrollments.isAllowed(tpm)).toBe(false);
    await db
      .insertInto('enrollment_allowlist')
      .values({ kind: 'ek-serial', value: tpm.ekIssuerSerialSha256, note: '', created_at: '' })
      .execute();
    expect(await enrollments.isAllowed(tpm)).toBe(false);
    await enrollments.allow('ek-issuer-serial', tpm.ekIssuerSerialSha256, 'batch 7');
    expect(await enrollments.isAllowed(tpm)).toBe(true);
    expect(await enrollments.isAllowed({ ...tpm, ekIssuerSerialSha256: hex() })).toBe(false);
    await enrollments.allow('ek-public-sha256', tpm.ekPublicSha256, '');
    expect(await enrollments.isAllowed({ ...tpm, ekIssuerSerialSha256: hex() })).toBe(true);
  });
});
