import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Slot } from '#otter/boot-env';

/** The release each slot holds as far as this agent wrote it (`<state-dir>/slot-versions.json`). */
export type SlotVersions = Record<Slot, string | null>;

const file = (stateDir: string): string => join(stateDir, 'slot-versions.json');

export async function readSlotVersions(stateDir: string): Promise<SlotVersions> {
  try {
    const read = JSON.parse(await readFile(file(stateDir), 'utf8')) as Partial<SlotVersions>;
    return { a: read.a ?? null, b: read.b ?? null };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { a: null, b: null };
    throw e;
  }
}

/** Records that `slot` now holds `version` (written after an install into it). */
export async function recordSlotVersion(stateDir: string, slot: Slot, version: string): Promise<void> {
  const versions = { ...(await readSlotVersions(stateDir)), [slot]: version };
  await mkdir(stateDir, { recursive: true });
  const tmp = `${file(stateDir)}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(versions)}\n`, { mode: 0o600 });
  await rename(tmp, file(stateDir));
}
