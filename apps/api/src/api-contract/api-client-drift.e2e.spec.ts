import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { generateApiClient } from '../testing/generate-api-client.js';

/**
 * The typed client in libs/api-client/src/generated is generated from GET /api/openapi.json and checked in.
 * Regenerated here into a temporary directory: a difference means the routes changed and the client did not
 * (`make api-client` writes it; OTTER_WRITE_API_CLIENT=1 is how it does).
 */
const CHECKED_IN = join(import.meta.dirname, '../../../../libs/api-client/src/generated');

let api: ApiHarness;
beforeAll(async () => {
  api = await startApi();
});
afterAll(() => api.close());

it('the checked-in client is what the document generates', { timeout: 60_000 }, async () => {
  const document = (await (await fetch(`${api.url}/api/openapi.json`)).json()) as object;
  const out = mkdtempSync(join(tmpdir(), 'otter-api-client-'));
  try {
    await generateApiClient(document, out);
    if (process.env.OTTER_WRITE_API_CLIENT === '1') {
      rmSync(CHECKED_IN, { recursive: true, force: true });
      cpSync(out, CHECKED_IN, { recursive: true });
    }
    const files = readdirSync(out).sort();
    expect(readdirSync(CHECKED_IN).sort()).toEqual(files);
    for (const file of files) {
      expect(readFileSync(join(CHECKED_IN, file), 'utf8'), `${file}: run make api-client`).toBe(
        readFileSync(join(out, file), 'utf8'),
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
