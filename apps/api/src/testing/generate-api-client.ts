import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createClient } from '@hey-api/openapi-ts';

/**
 * Writes the TypeScript types @hey-api/openapi-ts generates from `document`, and the document itself, into
 * `directory` (which it empties first): what libs/api-client/src/generated holds (docs/api.md).
 */
export async function generateApiClient(document: object, directory: string): Promise<void> {
  const text = `${JSON.stringify(document, null, 2)}\n`;
  const scratch = mkdtempSync(join(tmpdir(), 'otter-openapi-'));
  try {
    const input = join(scratch, 'openapi.json');
    writeFileSync(input, text);
    await createClient({
      input,
      output: { path: directory },
      plugins: ['@hey-api/typescript'],
      logs: { level: 'silent', file: false },
    });
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  writeFileSync(join(directory, 'openapi.json'), text);
}
