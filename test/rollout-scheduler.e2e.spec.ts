import 'reflect-metadata';
import { randomBytes, randomUUID } from 'node:crypto';
import type { INestApplicationContext } from '@nestjs/common';
import { afterAll, describe, expect, it } from 'vitest';
import type { RolloutDto, RolloutNodeDto } from '#otter/contracts';
import { loadConfig } from '#otter/config';
import { testDatabases } from '#otter/db';
import { RolloutFixtures, twoWaveRollout } from '../apps/api/src/rollouts/testing/rollout-fixtures.js';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { createScheduler } from '../apps/scheduler/src/create-scheduler.js';

// The scheduler process's own job: started through the api, a rollout is ticked by the scheduler's
// BullMQ job (the immediate tick the api queues, then the repeatable one), never by hand.

const dbs = await testDatabases();
const closers: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await Promise.all(dbs.map((d) => d.drop()));
});

describe.each(dbs)('rollout ticks from the scheduler on $name', ({ config: database }) => {
  it('admits the first wave and advances on proven success, with no tick by hand', async () => {
    const env = {
      DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
      REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
      OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
      OTTER_ROLLOUT_TICK_SECONDS: '1',
    };
    const api: ApiHarness = await startApi(env);
    closers.push(() => api.close());
    const scheduler: INestApplicationContext = await createScheduler(
      loadConfig({
        ...env,
        OTTER_DATA_DIR: api.config.dataDir,
        OTTER_LOG_LEVEL: 'silent',
        OTTER_ENV: 'test',
      }),
    );
    closers.push(() => scheduler.close());

    const fixtures = new RolloutFixtures(api);
    await fixtures.release('rpi4', '1.0.0');
    await fixtures.release('rpi4', '2.0.0');
    const nodes = [await fixtures.node('rpi4', '1.0.0'), await fixtures.node('rpi4', '1.0.0')];
    for (const n of nodes) await fixtures.verdict(n, true, new Date());

    const created = await api.admin<RolloutDto>(
      'POST',
      '/api/v1/rollouts',
      twoWaveRollout('rpi4', '2.0.0', `r-${randomUUID()}`),
    );
    await api.admin('POST', `/api/v1/rollouts/${created.id}/start`);

    const states = async (): Promise<RolloutNodeDto[]> =>
      (await api.admin<{ nodes: RolloutNodeDto[] }>('GET', `/api/v1/rollouts/${created.id}/nodes`)).nodes;
    await expect
      .poll(async () => (await states()).map((n) => n.state), { timeout: 10_000 })
      .toEqual(['assigned', 'pending']);
    const first = (await states())[0]!;
    await api.db
      .updateTable('rollout_nodes')
      .set({ state: 'committed' })
      .where('node_id', '=', first.nodeId)
      .execute();
    await fixtures.verdict(first.nodeId, true, new Date(Date.now() + 1000), '2.0.0');
    await expect
      .poll(async () => (await api.admin<RolloutDto>('GET', `/api/v1/rollouts/${created.id}`)).currentWave, {
        timeout: 10_000,
      })
      .toBe(1);
    await expect
      .poll(async () => (await states()).map((n) => n.state), { timeout: 10_000 })
      .toEqual(['succeeded', 'assigned']);
  });
});
