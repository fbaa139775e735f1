import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import semver from 'semver';
import { describeError, TufClientError } from './tuf-client-error.js';

/** The release an agent installed last through the director: the floor for every later assignment. */
export interface InstalledRelease {
  targetPath: string;
  releaseVersion: string;
  sha256: string;
  installedAt: string;
}

export function installedReleaseFile(stateDir: string): string {
  return join(stateDir, 'director', 'installed.json');
}

export async function readInstalledRelease(stateDir: string): Promise<InstalledRelease | undefined> {
  let text: string;
  try {
    text = await readFile(installedReleaseFile(stateDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const record = JSON.parse(text) as Partial<InstalledRelease>;
    if (typeof record.releaseVersion !== 'string' || !semver.valid(record.releaseVersion)) {
      throw new Error('releaseVersion is not a semantic version');
    }
    return record as InstalledRelease;
  } catch (error) {
    // A record that cannot be read must not silently lower the floor to nothing.
    throw new TufClientError(
      'TRUSTED_ROOT_INVALID',
      `cannot read ${installedReleaseFile(stateDir)}: ${describeError(error)}`,
      { cause: error },
    );
  }
}

/** Records an installed release; a version lower than the recorded one is refused, never written. */
export async function recordInstalledRelease(
  stateDir: string,
  release: Omit<InstalledRelease, 'installedAt'>,
): Promise<InstalledRelease> {
  const previous = await readInstalledRelease(stateDir);
  if (previous && semver.lt(release.releaseVersion, previous.releaseVersion)) {
    throw new TufClientError(
      'RELEASE_ROLLBACK',
      `release ${release.releaseVersion} is older than ${previous.releaseVersion}, installed before`,
    );
  }
  const record: InstalledRelease = { ...release, installedAt: new Date().toISOString() };
  const file = installedReleaseFile(stateDir);
  await mkdir(join(stateDir, 'director'), { recursive: true });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
  await rename(temp, file);
  return record;
}
