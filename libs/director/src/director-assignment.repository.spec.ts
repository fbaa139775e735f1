import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, migrateToLatest, testDatabases, type Db } from '#otter/db';
import type { DirectorAssignmentInput } from './director-assignment.js';
import { DirectorAssignmentRepository } from './director-assignment.repository.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

function input(overrides: Partial<DirectorAssignmentInput> = {}): DirectorAssignmentInput {
  return {
    nodeId: randomUUID(),
    hardwareId: 'rpi4',
    releaseId: 'rel-1',
    targetPath: 'images/rpi4/1.0.0',
    version: '1.0.0',
    sha256: SHA_A,
    length: 5_000_000_000,
    rolloutId: 'rollout-1',
    ...overrides,
  };
}

describe.each(dbs)('DirectorAssignmentRepository on $name', ({ config }) => {
  let db: Db;
  let repo: DirectorAssignmentRepository;

  beforeAll(async () => {
    db = createDatabase(config);
    await migrateToLatest(db);
    repo = new DirectorAssignmentRepository(db);
  });
  afterAll(async () => db?.destroy());

  it('creates an assignment at generation 1 and bumps it only when something changes', async () => {
    const first = input();
    const a = await repo.assign(first);
    expect(a).toEqual({
      nodeId: first.nodeId,
      hardwareId: 'rpi4',
      image: {
        releaseId: 'rel-1',
        targetPath: 'images/rpi4/1.0.0',
        version: '1.0.0',
        sha256: SHA_A,
        length: 5_000_000_000,
      },
      rolloutId: 'rollout-1',
      generation: 1,
      metadataGeneration: null,
      updatedAt: a.updatedAt,
    });
    const same = await repo.assign(first);
    expect(same).toEqual(a);

    const changes: Array<Partial<DirectorAssignmentInput>> = [
      { sha256: SHA_B },
      { length: 1 },
      { rolloutId: null },
      { rolloutId: 'rollout-2' },
      { releaseId: 'rel-2', targetPath: 'images/rpi4/1.1.0', version: '1.1.0' },
    ];
    let expected = 1;
    let current = first;
    for (const change of changes) {
      current = { ...current, ...change };
      expect((await repo.assign(current)).generation).toBe(++expected);
      expect((await repo.assign(current)).generation).toBe(expected);
    }
    expect(await repo.get(first.nodeId)).toMatchObject({
      generation: 6,
      rolloutId: 'rollout-2',
      image: { version: '1.1.0', sha256: SHA_B, length: 1 },
    });
  });

  it('clears an image with one more generation; clearing again or an unknown node changes nothing', async () => {
    const a = input();
    await repo.assign(a);
    const cleared = await repo.clear(a.nodeId);
    expect(cleared).toMatchObject({ image: null, rolloutId: null, generation: 2 });
    expect(await repo.clear(a.nodeId)).toMatchObject({ generation: 2 });
    expect(await repo.clear(randomUUID())).toBeUndefined();
    expect(await repo.get(randomUUID())).toBeUndefined();
    expect((await repo.assign(a)).generation).toBe(3);
  });

  it("takes part in the caller's transaction: a rollback keeps nothing, a commit keeps it", async () => {
    const a = input();
    await expect(
      db.transaction().execute(async (tx) => {
        await repo.assign(a, tx);
        expect((await repo.get(a.nodeId, tx))?.generation).toBe(1);
        throw new Error('scheduler gave up');
      }),
    ).rejects.toThrow('scheduler gave up');
    expect(await repo.get(a.nodeId)).toBeUndefined();
    await db.transaction().execute(async (tx) => {
      await repo.assign(a, tx);
      await repo.clear(a.nodeId, tx);
    });
    expect(await repo.get(a.nodeId)).toMatchObject({ image: null, generation: 2 });
  });

  it('refuses an assignment it could not sign as that node’s image target, storing nothing', async () => {
    const bad: Array<[Partial<DirectorAssignmentInput>, RegExp]> = [
      [{ targetPath: 'images/other/1.0.0' }, /targetPath/],
      [{ targetPath: 'deltas/rpi4/1.0.0' }, /targetPath/],
      [{ version: 'v1', targetPath: 'images/rpi4/v1' }, /version/],
      [{ sha256: SHA_A.toUpperCase() }, /sha256/],
      [{ length: -1 }, /length/],
      [{ length: 1.5 }, /length/],
      [{ hardwareId: '../x', targetPath: 'images/../x/1.0.0' }, /hardwareId/],
      [{ nodeId: 'a/b' }, /nodeId/],
      [{ releaseId: '' }, /releaseId/],
    ];
    for (const [change, message] of bad) {
      const a = input(change);
      await expect(repo.assign(a)).rejects.toMatchObject({ code: 'DIRECTOR_ASSIGNMENT_INVALID', message });
      expect(await repo.get(a.nodeId)).toBeUndefined();
    }
  });
});
