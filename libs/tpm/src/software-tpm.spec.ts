import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { startSoftwareTpm } from './software-tpm.js';

const run = promisify(execFile);

describe('startSoftwareTpm', () => {
  it('provisions a TPM with RSA and ECC EK certificates from a local CA and survives power loss', async () => {
    const tpm = await startSoftwareTpm();
    try {
      const env = { ...process.env, TPM2TOOLS_TCTI: tpm.tcti };
      const nv = (await run('tpm2_nvreadpublic', [], { env })).stdout;
      expect(nv).toContain('0x1c00002');
      expect(nv).toContain('0x1c00016');
      await tpm.restart({ clean: false });
      const pcrs = (await run('tpm2_pcrread', ['sha256:0'], { env })).stdout;
      expect(pcrs).toMatch(/0 : 0x0{64}/);
    } finally {
      await tpm.stop();
    }
  });
});
