import { InvalidArgumentError, type Command } from 'commander';
import {
  FileBootEnvironment,
  GrubEnvironment,
  SimulatedBootloader,
  SlotManager,
  UBootEnvironment,
  type BootEnvironment,
} from '#otter/boot-env';
import { CommandRebooter, SimulatedRebooter, type Rebooter } from '../daemon/rebooter.js';
import { UpdateDaemon } from '../daemon/update-daemon.js';
import { DeviceAgent } from '../device/device-agent.js';
import { systemInventorySources } from '../inventory/inventory-sources.js';

interface RunFlags {
  stateDir: string;
  root: string;
  directorRoot: string;
  slotA: string;
  slotB: string;
  bootEnv: string;
  healthCommand?: string;
  rebootCommand: string;
  simulate?: boolean;
  pollInterval: number;
  once?: boolean;
  labelsFile: string;
  osRelease: string;
  diskPath: string;
}

function seconds(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0.1 || n > 86_400) throw new InvalidArgumentError('seconds, 0.1..86400');
  return n;
}

/** `file:PATH`, `uboot` or `uboot:FW_ENV_CONFIG`, `grub:GRUBENV`. */
function bootEnvironment(spec: string): { env: BootEnvironment; kind: 'file' | 'uboot' | 'grub' } {
  const [kind, ...rest] = spec.split(':');
  const arg = rest.join(':');
  if (kind === 'file' && arg) return { env: new FileBootEnvironment(arg), kind };
  if (kind === 'uboot') return { env: new UBootEnvironment(arg ? { configFile: arg } : {}), kind };
  if (kind === 'grub' && arg) return { env: new GrubEnvironment({ file: arg }), kind };
  throw new InvalidArgumentError(`--boot-env: file:PATH, uboot[:CONFIG] or grub:PATH, not ${spec}`);
}

const MAX_BACKOFF_SECONDS = 300;

/** `otter-agent run`: the update daemon. */
export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .summary('run the update daemon: poll, install to the inactive slot, reboot, attest, commit or roll back')
    .requiredOption('--state-dir <dir>', "the node's enrollment state (run `otter-agent enroll` first)")
    .requiredOption('--root <file>', "the image repository's root.json this device was provisioned with")
    .requiredOption('--director-root <file>', "the director repository's root.json")
    .requiredOption('--slot-a <path>', 'slot A: image file or block device')
    .requiredOption('--slot-b <path>', 'slot B: image file or block device')
    .requiredOption('--boot-env <spec>', 'boot environment: file:PATH, uboot[:FW_ENV_CONFIG] or grub:GRUBENV')
    .option('--health-command <cmd>', 'run after a trial boot; exit 0 = healthy')
    .option('--reboot-command <cmd>', 'how to reboot the node', 'systemctl reboot')
    .option(
      '--simulate',
      'a node on swtpm: reboot = TPM power cycle + simulated bootloader; the agent measures the booted slot',
    )
    .option('--poll-interval <seconds>', 'seconds between polls (±20% jitter)', seconds, 60)
    .option('--once', 'one poll, then exit')
    .option('--labels-file <file>', 'device labels for the inventory, key=value a line', '/etc/otter/labels')
    .option('--os-release <file>', 'os-release(5) file for the inventory', '/etc/os-release')
    .option('--disk-path <path>', "a path on the filesystem whose size is the inventory's disk size", '/')
    .action(async (flags: RunFlags) => {
      const agent = await DeviceAgent.open(flags.stateDir);
      const { env, kind: bootEnvKind } = bootEnvironment(flags.bootEnv);
      const slotManager = new SlotManager(env);
      await slotManager.ensureProvisioned('a');
      const bootloader = new SimulatedBootloader(env);
      let rebooter: Rebooter = new CommandRebooter(flags.rebootCommand);
      if (flags.simulate) {
        const simulated = new SimulatedRebooter(agent.tcti, bootloader);
        await simulated.startTpmIfNeeded();
        // First start of a simulated node: nothing has booted yet, so power it on once.
        if ((await slotManager.status()).booted === undefined) await bootloader.powerOn();
        rebooter = simulated;
      }
      const log = (event: Record<string, unknown>): void => {
        process.stdout.write(
          `${JSON.stringify({ at: new Date().toISOString(), node: agent.nodeId, ...event })}\n`,
        );
      };
      agent.onEvent(log);
      const daemon = new UpdateDaemon(agent, {
        stateDir: flags.stateDir,
        imageRootPath: flags.root,
        directorRootPath: flags.directorRoot,
        slots: { a: flags.slotA, b: flags.slotB },
        slotManager,
        rebooter,
        healthCommand: flags.healthCommand,
        simulateMeasuredBoot: !!flags.simulate,
        inventorySources: systemInventorySources({
          labelsFile: flags.labelsFile,
          osReleaseFile: flags.osRelease,
          diskPath: flags.diskPath,
        }),
        bootEnvKind,
        log,
      });

      let stopping = false;
      const stop = (): void => {
        stopping = true;
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      let failures = 0;
      while (!stopping) {
        let wait = flags.pollInterval * (0.8 + Math.random() * 0.4);
        try {
          const outcome = await daemon.cycle();
          failures = 0;
          if (outcome !== 'idle') log({ event: 'cycle', outcome });
          // After a reboot or an install there is more to do at once: the trial boot's verification.
          if (outcome === 'installed-and-rebooted' || outcome === 'rebooted') wait = 0;
        } catch (error) {
          failures += 1;
          wait = Math.min(MAX_BACKOFF_SECONDS, flags.pollInterval * 2 ** Math.min(failures, 8));
          log({
            event: 'error',
            error: error instanceof Error ? error.message : String(error),
            retryIn: wait,
          });
        }
        if (flags.once) break;
        await new Promise((r) => setTimeout(r, wait * 1000));
      }
    });
}
