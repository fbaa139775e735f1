import 'reflect-metadata';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import { createApi } from './create-api.js';

describe('api', () => {
  it('boots on embedded defaults and answers /health', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-api-'));
    const app = await createApi(loadConfig({ OTTER_DATA_DIR: dir, OTTER_LOG_LEVEL: 'silent' }));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    const res = await app.getHttpAdapter().getInstance().inject({ method: 'GET', url: '/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
    await app.close();
  });
});
