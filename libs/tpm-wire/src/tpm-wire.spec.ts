import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { credentialBlob, encodeTpm2b, withCredentialBlobHeader } from './credential-blob.js';

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

describe('the tpm2-tools credential file', () => {
  it('is 0xBADCC0DE, version 1, then the two TPM2Bs; the bare pair gets the header once', () => {
    const idObject = encodeTpm2b(Buffer.from('0102', 'hex'));
    const secret = encodeTpm2b(Buffer.from('ff', 'hex'));
    const file = credentialBlob(idObject, secret);
    expect(file.toString('hex')).toBe('badcc0de' + '00000001' + '00020102' + '0001ff');
    expect(withCredentialBlobHeader(file)).toEqual(file);
    expect(withCredentialBlobHeader(Buffer.concat([idObject, secret]))).toEqual(file);
  });
});
