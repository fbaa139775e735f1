import type { Command } from 'commander';
import { DeltasClient, resolveClientSettings } from '#otter/api-client';
import type { DeltaBuildDto } from '#otter/contracts';
import { processCliContext, writeJson, type CliContext } from '../cli-context.js';
import { formatBytes, renderTable } from '../output.js';
import { terminalText } from '../terminal-text.js';

function deltasClient(ctx: CliContext): DeltasClient {
  return new DeltasClient(resolveClientSettings(ctx.env, ctx.cwd));
}

/** One build as `otter delta list --json` prints it. */
function summary(d: DeltaBuildDto): Record<string, unknown> {
  return {
    id: d.id,
    hardware: d.hardwareId,
    from: d.from.version,
    to: d.to.version,
    state: d.state,
    progress: d.progress,
    patchBytes: d.patchLength,
    fullBytes: d.to.length,
    saving: d.saving,
    buildSeconds: d.buildSeconds,
    peakRssBytes: d.peakRssBytes,
    targetPath: d.targetPath,
    error: d.error,
  };
}

const pct = (fraction: number): string => `${(fraction * 100).toFixed(1)}%`;

export function registerDeltaCommands(program: Command, ctx: CliContext = processCliContext()): void {
  const delta = program
    .command('delta')
    .description('binary deltas between releases: builds and bytes saved');

  delta
    .command('list')
    .description('delta builds, newest first: from, to, state, progress, patch size and saving')
    .option('--hardware <id>', 'only deltas for this hardware id')
    .option('--json', 'print as JSON')
    .action(async (opts: { hardware?: string; json?: boolean }) => {
      const deltas = await deltasClient(ctx).listDeltas(opts.hardware);
      if (opts.json) {
        writeJson(ctx, { deltas: deltas.map(summary) });
        return;
      }
      if (deltas.length === 0) {
        ctx.stderr.write('no delta builds\n');
        return;
      }
      ctx.stdout.write(
        renderTable(
          ['HARDWARE', 'FROM', 'TO', 'STATE', 'PROGRESS', 'PATCH', 'SAVING', 'ERROR'],
          deltas.map((d) => [
            d.hardwareId,
            d.from.version,
            d.to.version,
            d.state,
            `${d.progress}%`,
            d.patchLength === null ? '-' : formatBytes(d.patchLength),
            d.saving === null ? '-' : pct(d.saving),
            d.error ?? '',
          ]),
        ),
      );
    });

  delta
    .command('request')
    .description('build the delta between two releases of a hardware id (the same pair returns its build)')
    .requiredOption('--hardware <id>', 'hardware id')
    .requiredOption('--from <version>', 'the release nodes run now')
    .requiredOption('--to <version>', 'the release they update to')
    .option('--json', 'print the build as JSON')
    .action(async (opts: { hardware: string; from: string; to: string; json?: boolean }) => {
      const build = await deltasClient(ctx).requestDelta({
        hardware: opts.hardware,
        from: opts.from,
        to: opts.to,
      });
      if (opts.json) {
        writeJson(ctx, build);
        return;
      }
      ctx.stdout.write(terminalText`${build.targetPath}: ${build.state} (${build.progress}%)\n`);
    });

  delta
    .command('savings')
    .description('bytes nodes downloaded and saved, per release and per node')
    .option('--hardware <id>', 'only this hardware id')
    .option('--json', 'print as JSON')
    .action(async (opts: { hardware?: string; json?: boolean }) => {
      const savings = await deltasClient(ctx).savings(opts.hardware);
      if (opts.json) {
        writeJson(ctx, savings);
        return;
      }
      if (savings.releases.length === 0) {
        ctx.stderr.write('no downloads reported\n');
        return;
      }
      ctx.stdout.write(
        renderTable(
          ['HARDWARE', 'VERSION', 'DOWNLOADS', 'DOWNLOADED', 'FULL', 'SAVED'],
          savings.releases.map((r) => [
            r.hardwareId,
            r.version,
            String(r.downloads),
            formatBytes(r.bytesDownloaded),
            formatBytes(r.fullBytes),
            `${formatBytes(r.bytesSaved)}${r.fullBytes > 0 ? ` (${pct(r.bytesSaved / r.fullBytes)})` : ''}`,
          ]),
        ),
      );
    });
}
