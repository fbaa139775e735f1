import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('the TPM wire library', () => {
  it('imports nothing but node: built-ins and its own files (no Nest, no database, no other lib)', () => {
    const dir = fileURLToPath(new URL('.', import.meta.url));
    const sources = readdirSync(dir).filter((f) => f.endsWith('.ts') && !f.endsWith('.spec.ts'));
    expect(sources).toContain('index.ts');
    for (const file of sources) {
      const text = readFileSync(`${dir}/${file}`, 'utf8');
      for (const [, specifier] of text.matchAll(/\bfrom\s+'([^']+)'/g)) {
        const allowed =
          specifier!.startsWith('./') ||
          (specifier!.startsWith('node:') && builtinModules.includes(specifier!.slice('node:'.length)));
        expect(allowed, `${file} imports ${specifier}`).toBe(true);
      }
    }
  });
});
