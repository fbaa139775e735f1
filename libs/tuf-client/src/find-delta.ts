import type { DeltaTargetCustom } from '#otter/contracts';
import type { TargetFile } from '@tufjs/models';
// Not exported from the package index (see the TUF notes): deep import, type only.
import type { SuccinctRoles } from '@tufjs/models/dist/role.js';
import { digestSlotPrefix } from './slot-io.js';
import type { SignedTarget, TufSession } from './tuf-session.js';

/** The `from` or `to` image of a delta, as its signed custom metadata names it. */
export interface DeltaImage {
  version: string;
  sha256: string;
  length: number;
}

export interface DeltaMatch {
  /** The delta target, as tuf-js's own delegation walk returned it. */
  target: SignedTarget;
  from: DeltaImage;
  to: DeltaImage;
}

export type FindDeltaResult = { delta: DeltaMatch } | { reason: string };

/** Bound on the roles one scan reads (Otter has 2 + 2 × 2^binBits, at most 2 + 2 × 1024). */
const MAX_ROLES = 4096;
/** Bins beyond this are not scanned (Otter's OTTER_TUF_BIN_BITS is at most 10: 1024 bins). */
const MAX_BINS = 4096;
const HEX_SHA256 = /^[0-9a-f]{64}$/;

/**
 * Finds a published delta that turns the image in `currentSlot` into `image`.
 *
 * tuf-js cannot list targets, and a delta's path names its source version, which the node does not know
 * (it only has the bytes of its current slot). So the `deltas` family is scanned: every role that can hold a
 * `deltas/{hardware}/*` target is loaded through tuf-js's own delegation walk — one lookup of a probe path
 * per succinct hash bin, which makes tuf-js fetch (or re-verify from its cache) and persist that bin — and
 * the persisted roles are read back for candidates whose signed `custom.delta.to` is `image` and whose
 * `custom.delta.from` is the current slot (hashed over exactly `from.length` bytes, so a block device
 * works). The candidate picked is then looked up again by path through tuf-js, and only that answer (its
 * signed length, hashes and custom) is used: what was read from disk only ever suggests paths.
 *
 * Cost: a bin is fetched only when the snapshot names a version the cache does not hold, so a node fetches
 * every bin once (2^binBits small requests) and afterwards only the bins that changed.
 */
export async function findDelta(
  session: TufSession,
  image: SignedTarget,
  hardware: string,
  currentSlot: string,
): Promise<FindDeltaResult> {
  const listed = await listDeltaTargets(session, hardware);
  const towardImage = [...listed]
    .map(([path, file]) => ({ path, file, custom: parseDeltaCustom(file.custom) }))
    .filter(
      (c): c is { path: string; file: TargetFile; custom: DeltaTargetCustom['delta'] } =>
        c.custom !== undefined && c.custom.to.sha256 === image.sha256 && c.custom.to.length === image.length,
    );
  if (towardImage.length === 0) {
    return { reason: `no published delta to ${image.path} (sha256 ${image.sha256})` };
  }

  // Hash the current slot once per source length the candidates need.
  const currentByLength = new Map<number, string | undefined>();
  const currentSha = async (length: number): Promise<string | undefined> => {
    if (!currentByLength.has(length)) {
      currentByLength.set(length, (await digestSlotPrefix(currentSlot, length))?.['sha256']);
    }
    return currentByLength.get(length);
  };
  const fromCurrent = [];
  for (const candidate of towardImage) {
    if ((await currentSha(candidate.custom.from.length)) === candidate.custom.from.sha256) {
      fromCurrent.push(candidate);
    }
  }
  if (fromCurrent.length === 0) {
    const sources = towardImage.map((c) => c.custom.from.version).join(', ');
    return {
      reason: `no published delta to ${image.path} starts from the current slot's image (deltas from: ${sources})`,
    };
  }

  // Smallest download first; confirm through tuf-js (a stale or altered cache file cannot choose the bytes).
  fromCurrent.sort((a, b) => a.file.length - b.file.length);
  for (const candidate of fromCurrent) {
    const target = await session.lookup(candidate.path);
    const custom = target && parseDeltaCustom(target.custom);
    if (
      target &&
      custom &&
      custom.to.sha256 === image.sha256 &&
      custom.to.length === image.length &&
      custom.from.sha256 === candidate.custom.from.sha256 &&
      custom.from.length === candidate.custom.from.length
    ) {
      return { delta: { target, from: custom.from, to: custom.to } };
    }
  }
  return { reason: `no delta to ${image.path} from the current slot's image is signed by the repository` };
}

/**
 * Targets under `deltas/{hardware}/` listed by the roles tuf-js verified for that prefix, by path. Hints
 * only: confirm with TufSession.lookup.
 */
export async function listDeltaTargets(
  session: TufSession,
  hardware: string,
): Promise<Map<string, TargetFile>> {
  const prefix = `deltas/${hardware}/`;
  const probe = (n: number): string => `${prefix}otter-agent-probe-${n}`;
  // Loads every role tuf-js consults for a path under the prefix: the family role and one of its bins.
  await session.lookup(probe(0));

  const found = new Map<string, TargetFile>();
  const visited = new Set<string>();
  const visit = async (role: string): Promise<void> => {
    if (visited.has(role) || visited.size >= MAX_ROLES) return;
    visited.add(role);
    const metadata = await session.readPersistedRole(role);
    if (!metadata) return;
    for (const [path, file] of Object.entries(metadata.signed.targets)) {
      if (path.startsWith(prefix) && !found.has(path)) found.set(path, file);
    }
    const delegations = metadata.signed.delegations;
    if (delegations?.succinctRoles) {
      for (const [bin, binProbe] of probesForBins(delegations.succinctRoles, probe)) {
        await session.lookup(binProbe); // tuf-js loads and verifies the bin on its walk to the probe
        await visit(bin);
      }
    } else if (delegations) {
      // Path delegations: the walk to probe(0) above loaded the roles that serve the prefix.
      for (const { role: child, terminating } of delegations.rolesForTarget(probe(0))) {
        await visit(child);
        if (terminating) break;
      }
    }
  };
  await visit('targets');
  return found;
}

/** One probe path per bin: a path under the prefix that the bins' hash sends to that bin. */
function probesForBins(bins: SuccinctRoles, probe: (n: number) => string): Map<string, string> {
  const byBin = new Map<string, string>();
  if (bins.numberOfBins > MAX_BINS) return byBin;
  // Coupon collector: ~n·ln(n) tries cover n bins; the bound is far above that.
  const maxTries = bins.numberOfBins * 64 + 1024;
  for (let n = 1; byBin.size < bins.numberOfBins && n <= maxTries; n++) {
    const path = probe(n);
    const bin = bins.getRoleForTarget(path);
    if (!byBin.has(bin)) byBin.set(bin, path);
  }
  return byBin;
}

/** The `delta` object of a target's custom metadata, or undefined unless it is well formed. */
export function parseDeltaCustom(custom: Record<string, unknown>): DeltaTargetCustom['delta'] | undefined {
  const delta = custom['delta'];
  if (!isObject(delta)) return undefined;
  const from = parseImage(delta['from']);
  const to = parseImage(delta['to']);
  const format = delta['format'];
  if (!from || !to || typeof format !== 'string') return undefined;
  return { format, from, to };
}

function parseImage(value: unknown): DeltaImage | undefined {
  if (!isObject(value)) return undefined;
  const { version, sha256, length } = value;
  if (typeof version !== 'string' || typeof sha256 !== 'string' || !HEX_SHA256.test(sha256)) return undefined;
  if (typeof length !== 'number' || !Number.isSafeInteger(length) || length < 0) return undefined;
  return { version, sha256, length };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
