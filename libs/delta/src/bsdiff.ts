import { createRequire } from 'node:module';

/** The part of bsdiff-node (a CommonJS native addon without typings) that Otter uses. */
interface BsdiffNode {
  /** Runs on the libuv thread pool; resolves when the patch file is written. */
  diff(oldFile: string, newFile: string, patchFile: string): Promise<void>;
  patchSync(oldFile: string, newFile: string, patchFile: string): void;
}

const require = createRequire(import.meta.url);

/** Absolute path of bsdiff-node's entry point, for the bspatch child process to load. */
export const BSDIFF_NODE_PATH = require.resolve('bsdiff-node');

let loaded: BsdiffNode | undefined;

function bsdiffNode(): BsdiffNode {
  loaded ??= require(BSDIFF_NODE_PATH) as BsdiffNode;
  return loaded;
}

/** Counts calls and the largest inputs, so tests and the worker can see what actually reached bsdiff. */
export const bsdiffStats = { calls: 0, largestOldBytes: 0, largestNewBytes: 0 };

/** bsdiff `oldFile` -> `newFile` into `patchFile` on the thread pool (never blocks the event loop). */
export async function bsdiffFiles(
  oldFile: string,
  newFile: string,
  patchFile: string,
  sizes: { oldBytes: number; newBytes: number },
): Promise<void> {
  bsdiffStats.calls++;
  bsdiffStats.largestOldBytes = Math.max(bsdiffStats.largestOldBytes, sizes.oldBytes);
  bsdiffStats.largestNewBytes = Math.max(bsdiffStats.largestNewBytes, sizes.newBytes);
  await bsdiffNode().diff(oldFile, newFile, patchFile);
}
