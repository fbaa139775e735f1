import { InvalidArgumentError, Option, type Command } from 'commander';
import type { EkKind } from '#otter/tpm';
import { AgentError } from '../device/agent-error.js';
import { DeviceAgent } from '../device/device-agent.js';
import { BOOTED_SLOT_PCR } from '../platform/measured-boot.js';

/** Exit status of `attest` when Otter verified the quote and the verdict is a failure. */
export const EXIT_VERDICT_FAILED = 3;

interface EnrollFlags {
  server: string;
  tpm: string;
  stateDir: string;
  hardware: string;
  ek: EkKind;
  version?: string;
}

interface ReportFlags {
  stateDir: string;
  kind: 'health' | 'integrity';
  ok?: boolean;
  failed?: boolean;
  event: string;
  detail?: string;
}

function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

function pcrIndex(value: string): number {
  if (!/^\d{1,2}$/.test(value) || Number(value) > 23) throw new InvalidArgumentError('a PCR index, 0..23');
  return Number(value);
}

const stateDirOption = (): Option =>
  new Option(
    '--state-dir <dir>',
    "the node's enrollment state (device.json, TPM key blobs)",
  ).makeOptionMandatory();

/** Node identity and attestation: `enroll`, `attest`, `boot`, `report`. */
export function registerDeviceCommands(program: Command): void {
  program
    .command('enroll')
    .summary('enroll this node with its TPM and obtain its device identity')
    .description(
      'Enroll this node with Otter using its TPM, then obtain its device identity once it is admitted. Safe to ' +
        're-run: a node waiting for approval gets its identity on the run after `otter node approve`.',
    )
    .requiredOption('--server <url>', 'Otter server base URL')
    .requiredOption('--tpm <tcti>', 'TPM to use, as a tpm2-tools TCTI (e.g. device:/dev/tpmrm0)')
    .addOption(stateDirOption())
    .requiredOption('--hardware <id>', 'hardware id of this node, e.g. rpi4')
    .addOption(
      new Option('--ek <kind>', 'endorsement key whose certificate proves the TPM')
        .choices(['rsa', 'ecc'])
        .default('ecc'),
    )
    .option('--version <version>', 'release version this node runs now')
    .addHelpText(
      'after',
      '\nPrints {"nodeId","state","certificateNotAfter"} as one JSON line. Exit status 0 when the node\nis active and also while it waits for approval (with a notice on stderr); 1 on errors.',
    )
    .action(async (flags: EnrollFlags) => {
      const result = await DeviceAgent.enroll({
        server: flags.server,
        tcti: flags.tpm,
        stateDir: flags.stateDir,
        hardwareId: flags.hardware,
        ekKind: flags.ek,
        runningVersion: flags.version,
      });
      printJson(result);
      if (result.state === 'pending-approval') {
        process.stderr.write(
          `otter-agent: node ${result.nodeId} is waiting for approval: an operator runs ` +
            `\`otter node approve ${result.nodeId}\`, then run \`otter-agent enroll\` again to get its identity\n`,
        );
      } else if (result.state === 'rejected' || result.state === 'revoked') {
        process.stderr.write(
          `otter-agent: node ${result.nodeId} is ${result.state}: it will not get an identity\n`,
        );
        process.exitCode = 1;
      }
    });

  program
    .command('attest')
    .summary("attest this node's boot state; exit 3 when the verdict fails")
    .description("Quote this node's PCRs over a fresh Otter nonce and print Otter's verdict.")
    .addOption(stateDirOption())
    .option('--version <version>', 'release version this node booted (default: the last one given)')
    .addHelpText(
      'after',
      `\nPrints the verdict as one JSON line. Exit status: 0 the verdict passed, ${EXIT_VERDICT_FAILED} the verdict ` +
        'failed\n(Otter verified the quote and the measurements do not match), 1 any other error.',
    )
    .action(async (flags: { stateDir: string; version?: string }) => {
      const agent = await DeviceAgent.open(flags.stateDir);
      const verdict = await agent.attest(flags.version);
      printJson(verdict);
      if (!verdict.passed) {
        process.stderr.write(`otter-agent: attestation failed: ${verdict.reason}\n`);
        process.exitCode = EXIT_VERDICT_FAILED;
      }
    });

  program
    .command('boot')
    .summary('simulated measured boot of the booted slot image (stands in for firmware)')
    .description(
      'Simulated measured boot: extends a PCR with the SHA-256 of the booted slot image, once per TPM power ' +
        'cycle. This stands in for the firmware or bootloader, which on a real node measures the slot before ' +
        'the OS runs; run from the OS it proves the attestation path, not that the image booted unmodified.',
    )
    .addOption(stateDirOption())
    .requiredOption('--slot <file>', 'the slot image that booted')
    .option('--pcr <index>', 'PCR the slot is measured into', pcrIndex, BOOTED_SLOT_PCR)
    .addHelpText('after', '\nPrints {"pcr","digest"} as one JSON line.')
    .action(async (flags: { stateDir: string; slot: string; pcr: number }) => {
      const agent = await DeviceAgent.open(flags.stateDir);
      printJson(await agent.measureBootedSlot(flags.slot, flags.pcr));
    });

  program
    .command('report')
    .summary('report a health or integrity event')
    .description('Report a health or integrity event to Otter; a failed integrity report fails the node.')
    .addOption(stateDirOption())
    .addOption(
      new Option('--kind <kind>', 'what is reported').choices(['health', 'integrity']).makeOptionMandatory(),
    )
    .addOption(new Option('--ok', 'the check passed').conflicts('failed'))
    .addOption(new Option('--failed', 'the check failed'))
    .requiredOption('--event <name>', 'what was checked, e.g. dm-verity')
    .option('--detail <text>', 'what was seen')
    .addHelpText('after', '\nPrints the report as sent, as one JSON line.')
    .action(async (flags: ReportFlags) => {
      if (!flags.ok && !flags.failed) throw new AgentError('INVALID_ARGUMENT', 'give --ok or --failed');
      const agent = await DeviceAgent.open(flags.stateDir);
      printJson(
        await agent.report({
          kind: flags.kind,
          ok: !!flags.ok,
          event: flags.event,
          ...(flags.detail !== undefined && { detail: flags.detail }),
        }),
      );
    });
}
