import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { ApiError, parseMeasurements, validateReleaseFields } from '#otter/api-client';
import type { ReleaseDto } from '#otter/contracts';
import { apiClient, CliError, processCliContext, writeJson, type CliContext } from '../cli-context.js';
import { formatBytes, formatTimestamp, renderTable } from '../output.js';
import { rawStream } from '../terminal-text.js';
import { UploadProgress } from '../upload-progress.js';

export interface PushReleaseOptions {
  hardware: string;
  version: string;
  measurements?: string;
  notes?: string;
}

export interface ListReleasesOptions {
  hardware?: string;
  json?: boolean;
}

export function registerReleaseCommands(program: Command, ctx: CliContext = processCliContext()): void {
  const release = program.command('release').description('push and list release images');

  release
    .command('push')
    .description('upload an image as a new release; prints the created release as JSON')
    .argument('<image>', 'path of the image file')
    .requiredOption('--hardware <id>', 'hardware id the image is for')
    .requiredOption('--version <version>', 'semantic version of the release, e.g. 1.4.0')
    .option('--measurements <file>', 'JSON file of expected PCR values: {"<pcr index>": "<sha256 hex>"}')
    .option('--notes <text>', 'release notes')
    .action((image: string, opts: PushReleaseOptions) => pushRelease(ctx, image, opts));

  release
    .command('list')
    .description('list releases, newest first')
    .option('--hardware <id>', 'only releases for this hardware id')
    .option('--json', 'print the release list as JSON')
    .action((opts: ListReleasesOptions) => listReleases(ctx, opts));
}

export async function pushRelease(ctx: CliContext, image: string, opts: PushReleaseOptions): Promise<void> {
  // Everything checkable locally is checked before the upload starts: a typo should not cost a long upload.
  const measurements =
    opts.measurements === undefined ? undefined : readMeasurementsFile(ctx, opts.measurements);
  validateReleaseFields({ hardware: opts.hardware, version: opts.version, measurements, notes: opts.notes });
  const imagePath = resolve(ctx.cwd, image);
  checkImage(imagePath, image);
  const client = apiClient(ctx);
  // The server refuses a duplicate before reading the upload and closes the connection, which a client still
  // sending often sees as a reset rather than the 409; asking first gives the clear answer and saves the upload.
  if ((await client.listReleases(opts.hardware)).some((r) => r.version === opts.version)) {
    throw new ApiError(
      409,
      'RELEASE_DUPLICATE',
      `release ${opts.version} for ${opts.hardware} already exists`,
    );
  }

  // The bar redraws itself with cursor controls of its own: the one writer given the raw stream.
  const progress = ctx.stderr.isTTY ? new UploadProgress(rawStream(ctx.stderr)) : undefined;
  let release: ReleaseDto;
  try {
    release = await client.pushRelease({
      hardware: opts.hardware,
      version: opts.version,
      measurements,
      notes: opts.notes,
      imagePath,
      onProgress: progress?.update,
    });
  } finally {
    progress?.stop();
  }
  writeJson(ctx, release);
}

export async function listReleases(ctx: CliContext, opts: ListReleasesOptions): Promise<void> {
  const releases = await apiClient(ctx).listReleases(opts.hardware);
  if (opts.json) {
    writeJson(ctx, { releases });
    return;
  }
  if (releases.length === 0) {
    ctx.stderr.write('no releases\n');
    return;
  }
  ctx.stdout.write(
    renderTable(
      ['HARDWARE', 'VERSION', 'SHA256', 'SIZE', 'CREATED'],
      releases.map((r) => [
        r.hardwareId,
        r.version,
        r.sha256.slice(0, 12),
        formatBytes(r.length),
        formatTimestamp(r.createdAt),
      ]),
    ),
  );
}

function readMeasurementsFile(ctx: CliContext, file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(resolve(ctx.cwd, file), 'utf8');
  } catch (e) {
    throw new CliError(`cannot read measurements file ${file}: ${(e as Error).message}`);
  }
  return parseMeasurements(text, `measurements file ${file}`);
}

function checkImage(path: string, shown: string): void {
  let isFile: boolean;
  try {
    isFile = statSync(path).isFile();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new CliError(
      code === 'ENOENT' ? `image ${shown} not found` : `cannot read image ${shown}: ${(e as Error).message}`,
    );
  }
  if (!isFile) throw new CliError(`image ${shown} is not a regular file`);
}
