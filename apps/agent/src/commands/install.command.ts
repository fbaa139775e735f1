import type { Command } from 'commander';
import type { DownloadReport } from '#otter/contracts';
import { installTarget } from '#otter/tuf-client';
import { DeviceAgent } from '../device/device-agent.js';
import { loadDeviceState } from '../device/device-state.js';
import { createProgressReporter, type ProgressReporter } from '../progress.js';

interface InstallFlags {
  server: string;
  root: string;
  target: string;
  current: string;
  out: string;
  stateDir: string;
}

export function registerInstallCommand(program: Command): void {
  program
    .command('install')
    .summary('install an image into the inactive slot, by delta when one is published')
    .description(
      'Install an image target into the inactive slot. When the repository signs a delta from the image in ' +
        'the current slot, only the delta is downloaded (resumable, verified against its TUF target) and ' +
        "applied; the result is verified against the image's signed length and hashes before it counts. On " +
        'any failure the full image is downloaded instead. A file slot is replaced only by the verified image; ' +
        'a block device is written in place and is not a valid image until the command succeeds.',
    )
    .requiredOption('--server <url>', 'Otter server base URL')
    .requiredOption('--root <file>', 'trusted root.json this device was provisioned with')
    .requiredOption('--target <path>', 'image target, images/{hardware}/{version}')
    .requiredOption('--current <file>', 'the running slot: image file or block device')
    .requiredOption('--out <file>', 'the inactive slot to write: image file or block device')
    .option(
      '--state-dir <dir>',
      'TUF metadata cache and partial downloads; an enrolled node reports the download from here',
      './.otter-agent',
    )
    .addHelpText(
      'after',
      '\nPrints {"method":"delta"|"full","bytesDownloaded","fullBytes","target","sha256",...,"fallbackReason"?}\n' +
        'as one JSON line. Exit status 0 when the slot holds the verified image, 1 otherwise.',
    )
    .action(async (flags: InstallFlags) => {
      // One bar per phase (delta download, apply, full download): each has its own total.
      let phase: string | undefined;
      let progress: ProgressReporter = createProgressReporter(flags.target);
      try {
        const result = await installTarget({
          serverUrl: flags.server,
          trustedRootPath: flags.root,
          targetPath: flags.target,
          currentFile: flags.current,
          outFile: flags.out,
          stateDir: flags.stateDir,
          onProgress: (p) => {
            if (p.phase !== phase) {
              progress.stop();
              progress = createProgressReporter(`${flags.target} ${p.phase}`);
              phase = p.phase;
            }
            progress.update({ received: p.done, total: p.total });
          },
          reportDownload: await downloadReporter(flags.stateDir),
        });
        progress.stop();
        if (result.reportError !== undefined) {
          process.stderr.write(
            `otter-agent: warning: the download was not reported: ${result.reportError}\n`,
          );
        }
        process.stdout.write(
          `${JSON.stringify({
            method: result.method,
            bytesDownloaded: result.bytesDownloaded,
            fullBytes: result.fullBytes,
            target: result.target,
            sha256: result.sha256,
            resumedFrom: result.resumedFrom,
            out: result.path,
            ...(result.delta !== undefined && { delta: result.delta }),
            ...(result.fallbackReason !== undefined && { fallbackReason: result.fallbackReason }),
          })}\n`,
        );
      } finally {
        progress.stop();
      }
    });
}

/**
 * An enrolled node (device.json with an identity in the state dir) reports what it downloaded, for the
 * bytes-saved figures; a node without an identity has nothing to report with.
 */
async function downloadReporter(
  stateDir: string,
): Promise<((report: DownloadReport) => Promise<void>) | undefined> {
  const state = await loadDeviceState(stateDir).catch(() => undefined);
  if (!state?.certificate) return undefined;
  return async (report) => {
    const agent = await DeviceAgent.open(stateDir);
    await (await agent.authenticatedApi()).reportDownload(report);
  };
}
