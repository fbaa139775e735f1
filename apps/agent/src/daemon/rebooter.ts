import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SimulatedBootloader } from '#otter/boot-env';

const run = promisify(execFile);

/** How the agent reboots the node into the slot the boot environment names. */
export interface Rebooter {
  /** Resolves only for a simulated reboot (the agent carries on in the same process); a real one never returns. */
  reboot(): Promise<void>;
}

/** A real node: runs the reboot command (default `systemctl reboot`) and waits to be killed. */
export class CommandRebooter implements Rebooter {
  constructor(private readonly command: string) {}

  async reboot(): Promise<void> {
    await run('/bin/sh', ['-c', this.command]);
    // The system is going down; the agent resumes from the boot environment and update.json after boot.
    await new Promise<never>(() => undefined);
  }
}

/**
 * A node on swtpm in tests and the demo: a power cycle of the TPM (TPM_Init over swtpm's control channel,
 * then TPM2_Startup, so the PCRs reset as on a real reboot) and one power-on of the simulated bootloader.
 */
export class SimulatedRebooter implements Rebooter {
  constructor(
    private readonly tcti: string,
    private readonly bootloader: SimulatedBootloader,
  ) {}

  async reboot(): Promise<void> {
    const match = /^swtpm:host=([^,]+),port=(\d+)$/.exec(this.tcti);
    if (!match)
      throw new Error(`a simulated reboot needs an swtpm TCTI (swtpm:host=H,port=P), not ${this.tcti}`);
    const [, host, port] = match;
    await run('swtpm_ioctl', ['--tcp', `${host}:${Number(port) + 1}`, '-i']);
    await this.startTpm();
    await this.bootloader.powerOn();
  }

  /**
   * At the agent's start: an agent killed between TPM_Init and TPM2_Startup left a TPM that refuses every
   * command (on a real node firmware starts it at power-on). Starting one already started fails with
   * TPM_RC_INITIALIZE, which is fine; anything else is an error.
   */
  async startTpmIfNeeded(): Promise<void> {
    try {
      await this.startTpm();
    } catch (e) {
      const stderr = String((e as { stderr?: unknown }).stderr ?? '');
      if (!/already initialized|0x100\b/i.test(stderr)) throw e;
    }
  }

  private async startTpm(): Promise<void> {
    await run('tpm2_startup', ['-c'], { env: { ...process.env, TPM2TOOLS_TCTI: this.tcti } });
  }
}
