import { Logger } from '@nestjs/common';
import { isUniqueViolation } from '#otter/db';
import type {
  Ed25519Signer,
  OnlineKeyView,
  OnlineRole,
  RootSigned,
  SignedEnvelope,
  TufKey,
  UntrustedEnvelope,
} from '#otter/tuf-signing';
import { DirectorError } from './director.errors.js';
import { parseDirectorFileName } from './director-file-name.js';
import { freshUntil, staleReason } from './director-freshness.js';
import {
  AssignmentChangedError,
  nodeRepository,
  type DirectorMetadataStore,
  type NodeRole,
  type PollState,
  type StoredSet,
} from './director-metadata.store.js';
import type { DirectorRoot } from './director-root.js';
import { signNodeSet, type DirectorTtl, type RoleSigners } from './director-signing.js';
import { HeldTimestamps, type HeldTimestamp } from './held-timestamps.js';

export interface DirectorFile {
  role: 'root' | NodeRole;
  /** Undefined for `timestamp.json`, the one file that changes under the same name. */
  version: number | undefined;
  body: string;
}

const MAX_ATTEMPTS = 8;
/**
 * How long a held timestamp may be served without reading the database again (heldTimestamp). The image
 * repository's timestamp.json is held as long: a node can see a change at most a second late.
 */
export const POLL_HOLD_MS = 1_000;
const NODE_ID = /^[A-Za-z0-9-]{1,64}$/;

/**
 * The Uptane-style director: per-node TUF metadata whose targets role names the one image the node should
 * run. Metadata is signed lazily, when the node polls `timestamp.json`: after its assignment changed, after a
 * root rotation changed the keys, when a role nears expiry, or when its rows are missing. Versions are
 * max(previous + 1, unix seconds), so they never go backwards, even after the rows were lost or restored.
 */
export class DirectorRepository {
  private readonly logger = new Logger('DirectorRepository');
  constructor(
    private readonly store: DirectorMetadataStore,
    private readonly root: DirectorRoot,
    private readonly ttl: DirectorTtl,
    private readonly clock: () => number = Date.now,
    /** Shared with this process's DirectorAssignmentRepository, which drops what its writes change. */
    private readonly held = new HeldTimestamps(),
  ) {}

  /** The file a node asked for; a node-id check (a node reads only its own) is the caller's. */
  async metadata(nodeId: string, fileName: string): Promise<DirectorFile> {
    const file = parseDirectorFileName(fileName);
    if (!file || !NODE_ID.test(nodeId)) {
      throw new DirectorError(
        'DIRECTOR_METADATA_NOT_FOUND',
        'director metadata files are timestamp.json, N.root.json, N.snapshot.json and N.targets.json',
      );
    }
    if (file.role === 'timestamp') {
      return { role: 'timestamp', version: undefined, body: await this.timestamp(nodeId) };
    }
    if (file.role === 'root') return { ...file, body: await this.root.file(file.version) };
    const body = await this.store.body(nodeRepository(nodeId), file.role, file.version);
    if (body === undefined) {
      throw new DirectorError('DIRECTOR_METADATA_NOT_FOUND', `no ${file.version}.${file.role}.json`);
    }
    return { ...file, body };
  }

  /**
   * The node's timestamp as last served, if the database confirmed it less than POLL_HOLD_MS ago and no role
   * is near expiry: the poll path's answer without any I/O. The caller must have checked the node itself
   * (token, not revoked, active) at least as recently.
   */
  heldTimestamp(nodeId: string): string | undefined {
    const held = this.held.get(nodeId);
    if (!held) return undefined;
    const now = this.clock();
    return now - held.checkedAt < POLL_HOLD_MS && now < held.freshUntil ? held.body : undefined;
  }

  /**
   * Re-reads the poll state of many nodes in one query and marks each held timestamp that is still the one
   * to serve as confirmed now; returns those nodes. Others (changed, none held) need metadata(): their next
   * answer may have to be signed.
   */
  async confirmHeld(nodeIds: readonly string[]): Promise<Set<string>> {
    const confirmed = new Set<string>();
    const candidates = nodeIds.flatMap((id) => {
      const held = this.held.peek(id);
      return held ? [{ id, held }] : [];
    });
    if (candidates.length === 0) return confirmed;
    const readAt = this.clock();
    const states = await this.store.pollStates(candidates.map((c) => c.id));
    for (const { id, held } of candidates) {
      const state = states.get(id);
      if (state && this.held.peek(id) === held && isCurrent(held, state, readAt)) {
        held.checkedAt = Math.max(held.checkedAt, readAt);
        confirmed.add(id);
      }
    }
    return confirmed;
  }

  /** Drops a node's held timestamp (the node was refused): its next poll reads everything again. */
  forgetHeld(nodeId: string): void {
    this.held.delete(nodeId);
  }

  /** Drops every held timestamp: the next poll of each node reads the database (tests that tamper with it). */
  forgetAllHeld(): void {
    this.held.clear();
  }

  /** After a database restore: every node's metadata is re-signed, with a new version, on its next poll. */
  async invalidateAll(): Promise<number> {
    this.held.clear();
    return this.store.invalidateAll();
  }

  // --- the root ceremony's server side (same checks as the image repository) ----------------------------

  isInitialized(): Promise<boolean> {
    return this.root.isInitialized();
  }

  currentRoot(): Promise<SignedEnvelope<RootSigned>> {
    return this.root.current();
  }

  initializeWithDevRoot(devRootSigner: Ed25519Signer): Promise<boolean> {
    return this.root.initializeWithDevRoot(devRootSigner);
  }

  async publishRoot(candidate: SignedEnvelope | UntrustedEnvelope): Promise<RootSigned> {
    const root = await this.root.publish(candidate);
    this.held.clear();
    return root;
  }

  onlineKeys(): Promise<OnlineKeyView[]> {
    return this.root.onlineKeys();
  }

  preferredOnlineKeys(): Promise<Record<OnlineRole, TufKey[]>> {
    return this.root.preferredOnlineKeys();
  }

  rotateOnlineKey(role: OnlineRole): Promise<OnlineKeyView> {
    return this.root.rotateOnlineKey(role);
  }

  // --- the poll path ------------------------------------------------------------------------------------

  private async timestamp(nodeId: string): Promise<string> {
    for (let attempt = 1; ; attempt++) {
      const readAt = this.clock();
      const state = await this.store.pollState(nodeId);
      if (!state) {
        if (!(await this.store.ensureAssignmentRow(nodeId))) {
          throw new DirectorError('DIRECTOR_NODE_NOT_FOUND', 'no such node');
        }
        continue;
      }
      const { assignment, rootVersion } = state;
      if (rootVersion === undefined) {
        throw this.root.notInitialized();
      }
      const now = this.clock();
      const held = this.held.get(nodeId);
      if (held && isCurrent(held, state, now)) {
        held.checkedAt = Math.max(held.checkedAt, readAt);
        return held.body;
      }

      const root = await this.root.at(rootVersion);
      const stored = await this.store.latestSet(nodeId);
      const reason = staleReason(stored, assignment, root, this.ttl, now);
      let set: StoredSet = stored;
      if (reason !== undefined) {
        const signed = signNodeSet(assignment, stored, await this.signers(root), this.ttl, now);
        try {
          // Keep the set being replaced: a client may have just read its timestamp.
          await this.store.commitSet(nodeId, assignment.generation, Object.values(signed), {
            targets: stored.targets?.version,
            snapshot: stored.snapshot?.version,
            timestamp: stored.timestamp?.version,
          });
        } catch (e) {
          const retry = e instanceof AssignmentChangedError || isUniqueViolation(e);
          if (!retry || attempt >= MAX_ATTEMPTS) throw e;
          // Another replica signed first, or the scheduler changed the assignment: start over from the database.
          await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
          continue;
        }
        this.logger.debug(`re-signed director metadata of node ${nodeId}: ${reason}`);
        set = signed;
      }
      const timestamp = set.timestamp!;
      this.held.set(nodeId, {
        generation: assignment.generation,
        timestampVersion: timestamp.version,
        rootVersion,
        freshUntil: freshUntil(set, this.ttl),
        checkedAt: readAt,
        body: timestamp.body,
      });
      return timestamp.body;
    }
  }

  private async signers(root: RootSigned): Promise<RoleSigners> {
    return {
      targets: await this.root.signersFor(root, 'targets'),
      snapshot: await this.root.signersFor(root, 'snapshot'),
      timestamp: await this.root.signersFor(root, 'timestamp'),
    };
  }
}

/**
 * Whether a held timestamp is still the one to serve: made from the node's current assignment (whose
 * metadata is signed), still its newest timestamp, under the newest root, and no role due for re-signing.
 */
function isCurrent(held: HeldTimestamp, state: PollState, nowMs: number): boolean {
  const { assignment } = state;
  return (
    assignment.metadataGeneration === assignment.generation &&
    held.generation === assignment.generation &&
    held.timestampVersion === state.timestampVersion &&
    held.rootVersion === state.rootVersion &&
    nowMs < held.freshUntil
  );
}
