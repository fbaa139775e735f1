import { readFile, statfs } from 'node:fs/promises';
import { release, totalmem } from 'node:os';

/**
 * Where the agent reads what its inventory says about the machine. Injectable, so tests give their own
 * answers and need neither root nor a particular machine. Each source answers null when it cannot tell.
 */
export interface InventorySources {
  /** `uname -r`. */
  kernelRelease(): Promise<string | null>;
  /** The text of os-release(5). */
  osReleaseText(): Promise<string | null>;
  /** The text of the device labels file (`key=value` lines). */
  deviceLabelsText(): Promise<string | null>;
  diskBytes(): Promise<number | null>;
  memoryBytes(): Promise<number | null>;
}

export interface SystemInventoryOptions {
  /** Default /etc/os-release. */
  osReleaseFile?: string;
  /** Default /etc/otter/labels; a missing file means no device labels. */
  labelsFile?: string;
  /** The filesystem whose size is the node's disk size; default `/`. */
  diskPath?: string;
}

/** The running machine's answers. */
export function systemInventorySources(options: SystemInventoryOptions = {}): InventorySources {
  return {
    kernelRelease: () => Promise.resolve(release() || null),
    osReleaseText: () => readOptional(options.osReleaseFile ?? '/etc/os-release'),
    deviceLabelsText: () => readOptional(options.labelsFile ?? '/etc/otter/labels'),
    diskBytes: async () => {
      try {
        const fs = await statfs(options.diskPath ?? '/');
        return Number(fs.blocks) * Number(fs.bsize);
      } catch {
        return null;
      }
    },
    memoryBytes: () => Promise.resolve(totalmem() || null),
  };
}

async function readOptional(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}
