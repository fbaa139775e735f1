import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBootEnvironment, SimulatedBootloader } from '#otter/boot-env';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import { SimulatedRebooter } from './rebooter.js';

const run = promisify(execFile);

describe('SimulatedRebooter on swtpm', () => {
  let tpm: SoftwareTpm;
  let rebooter: SimulatedRebooter;
  const getcap = () =>
    run('tpm2_getcap', ['properties-fixed'], { env: { ...process.env, TPM2TOOLS_TCTI: tpm.tcti } });

  beforeAll(async () => {
    tpm = await startSoftwareTpm();
    const env = new FileBootEnvironment(join(mkdtempSync(join(tmpdir(), 'otter-rebooter-')), 'bootenv'));
    rebooter = new SimulatedRebooter(tpm.tcti, new SimulatedBootloader(env));
  });
  afterAll(async () => tpm?.stop());

  it('starts a TPM left un-started by an agent killed between TPM_Init and TPM2_Startup', async () => {
    // The agent died half way through a simulated reboot: TPM_Init was sent, TPM2_Startup never was.
    await run('swtpm_ioctl', ['--tcp', `127.0.0.1:${tpm.port + 1}`, '-i']);
    await expect(getcap()).rejects.toMatchObject({ stderr: expect.stringMatching(/not initialized/i) });
    await rebooter.startTpmIfNeeded();
    await getcap();
    // Started already (every normal agent start): nothing to do, no error.
    await rebooter.startTpmIfNeeded();
    await getcap();
  });
});
