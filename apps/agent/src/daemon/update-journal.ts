import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Slot } from '#otter/boot-env';

/**
 * The update in flight, written before the trial boot is scheduled (`<state-dir>/update.json`): after a
 * reboot, or a restart of the agent at any step, it says which release the trial slot holds and which rollout
 * asked for it. The boot environment says where the boot is; this says what it is about.
 */
export interface PendingUpdate {
  targetPath: string;
  version: string;
  sha256: string;
  length: number;
  rolloutId: string | null;
  slot: Slot;
  method: 'delta' | 'full';
  bytesDownloaded: number;
  startedAt: string;
}

const file = (stateDir: string): string => join(stateDir, 'update.json');

export async function readPendingUpdate(stateDir: string): Promise<PendingUpdate | undefined> {
  try {
    return JSON.parse(await readFile(file(stateDir), 'utf8')) as PendingUpdate;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export async function writePendingUpdate(stateDir: string, update: PendingUpdate): Promise<void> {
  await mkdir(stateDir, { recursive: true });
  const tmp = `${file(stateDir)}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(update, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, file(stateDir));
}

export async function clearPendingUpdate(stateDir: string): Promise<void> {
  await rm(file(stateDir), { force: true });
}
