import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { EkKind } from '#otter/tpm';

/** What an enrolled agent remembers between runs (`<state-dir>/device.json`); no secrets: keys stay in the TPM. */
export interface DeviceState {
  server: string;
  tcti: string;
  hardwareId: string;
  ekKind: EkKind;
  nodeId?: string;
  state?: string;
  certificate?: string;
  certificateNotAfter?: string;
  runningVersion?: string;
}

export function deviceStateFile(stateDir: string): string {
  return join(stateDir, 'device.json');
}

export async function loadDeviceState(stateDir: string): Promise<DeviceState | undefined> {
  try {
    return JSON.parse(await readFile(deviceStateFile(stateDir), 'utf8')) as DeviceState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Replaces device.json whole: written beside it, flushed, renamed over it, and the rename flushed, so a power
 * loss leaves the old state or the new one (a renewed certificate is never half written or lost once saved).
 */
export async function saveDeviceState(stateDir: string, state: DeviceState): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = deviceStateFile(stateDir);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(`${JSON.stringify(state, null, 2)}\n`);
    await handle.sync();
    await handle.close();
    await rename(tmp, file);
  } catch (e) {
    await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const dir = await open(stateDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
