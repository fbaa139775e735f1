import type { Command } from 'commander';
import { fetchTarget } from '#otter/tuf-client';
import { createProgressReporter } from '../progress.js';

interface FetchFlags {
  server: string;
  root: string;
  target: string;
  out: string;
  stateDir: string;
}

export function registerFetchCommand(program: Command): void {
  program
    .command('fetch')
    .description(
      'Download one target of the image repository, verified against its signed TUF metadata. ' +
        'An interrupted download resumes on the next run.',
    )
    .requiredOption('--server <url>', 'Otter server base URL')
    .requiredOption('--root <file>', 'trusted root.json this device was provisioned with')
    .requiredOption('--target <path>', 'TUF target path, e.g. images/rpi4/os-2.4.0.img')
    .requiredOption('--out <file>', 'where the verified file is written')
    .option('--state-dir <dir>', 'TUF metadata cache and partial downloads', './.otter-agent')
    .action(async (flags: FetchFlags) => {
      const progress = createProgressReporter(flags.target);
      try {
        const result = await fetchTarget({
          serverUrl: flags.server,
          trustedRootPath: flags.root,
          targetPath: flags.target,
          outFile: flags.out,
          stateDir: flags.stateDir,
          onProgress: (p) => progress.update(p),
        });
        progress.stop();
        process.stdout.write(
          `${JSON.stringify({
            target: flags.target,
            length: result.length,
            sha256: result.sha256,
            resumedFrom: result.resumedFrom,
            bytesDownloaded: result.bytesDownloaded,
            out: result.path,
          })}\n`,
        );
      } finally {
        progress.stop();
      }
    });
}
