import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
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

export async function saveDeviceState(stateDir: string, state: DeviceState): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const tmp = `${deviceStateFile(stateDir)}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, deviceStateFile(stateDir));
}
