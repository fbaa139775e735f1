import { Logger } from '@nestjs/common';
import { isUniqueViolation } from '#otter/db';
import type { TufConfig } from '#otter/config';
import type { EventPublisher } from '#otter/events';
import {
  RepositoryRoot,
  SPEC_VERSION,
  signMetadata,
  timestampOf,
  tufExpiry,
  type Ed25519Signer,
  type OnlineKeyStore,
  type OnlineKeyView,
  type OnlineRole,
  type RootSigned,
  type SignedEnvelope,
  type SnapshotSigned,
  type TargetFile,
  type TargetsSigned,
  type TufKey,
  type UntrustedEnvelope,
} from '#otter/tuf-signing';
import type { DelegationLayout } from './delegation-layout.js';
import { TufError, tufError } from './tuf.errors.js';
import { nearingExpiry, ROOT_WARNING_SECONDS, type ExpiringRole } from './expiry-warning.js';
import type { MetadataWrite, StoredTarget, TufMetadataRepository } from './tuf-metadata.repository.js';

export interface NewTarget {
  path: string;
  length: number;
  sha256: string;
  custom: Record<string, unknown>;
  blobKey: string;
}

export interface ServedTarget {
  path: string;
  length: number;
  sha256: string;
  blobKey: string;
}

type Heads = Map<string, { version: number; expiresAt: string }>;

const MAX_ATTEMPTS = 8;

/**
 * One TUF repository (consistent snapshots, hashed-bin delegations) stored in the database and signed with
 * online keys. Every change writes new metadata versions in one transaction; the (repository, role, version)
 * primary key means two processes racing can never publish two different files under one version — the
 * loser re-reads and tries again.
 */
export class TufRepository {
  private readonly logger: Logger;
  /** The root and online keys, handled as every Otter repository handles them (#otter/tuf-signing). */
  private readonly root: RepositoryRoot;

  constructor(
    readonly name: string,
    private readonly store: TufMetadataRepository,
    keys: OnlineKeyStore,
    private readonly layout: DelegationLayout,
    private readonly ttl: TufConfig,
    /** Announces each committed role version (`tuf.metadata.resigned`); absent where nothing listens. */
    private readonly events?: EventPublisher,
  ) {
    this.logger = new Logger(`TufRepository(${name})`);
    const storage = {
      latestRootBody: async () => (await this.store.latest(this.name, 'root'))?.body,
      storeRoot: (root: RootSigned, body: string) => this.commitRoot(root, body),
    };
    this.root = new RepositoryRoot(name, storage, keys, tufError, this.logger, ttl.rootTtl);
  }

  isInitialized(): Promise<boolean> {
    return this.root.isInitialized();
  }

  currentRoot(): Promise<SignedEnvelope<RootSigned>> {
    return this.root.current();
  }

  /** The file a client asked for: `N.role.json` or `timestamp.json` (version undefined). */
  async metadataFile(role: string, version?: number): Promise<string> {
    const row =
      version === undefined
        ? await this.store.latest(this.name, role)
        : await this.store.get(this.name, role, version);
    if (!row || (version === undefined && role !== 'timestamp')) {
      throw new TufError(
        'TUF_METADATA_NOT_FOUND',
        `no ${version ?? ''}${version === undefined ? '' : '.'}${role}.json`,
      );
    }
    return row.body;
  }

  async target(path: string, sha256: string): Promise<ServedTarget> {
    const t = await this.store.findTargetByHash(this.name, path, sha256);
    if (!t) throw new TufError('TUF_TARGET_NOT_FOUND', 'no such target');
    return { path: t.path, length: t.length, sha256: t.sha256, blobKey: t.blobKey };
  }

  /** A target's signed length, hash and custom metadata, exactly as its bin lists it; undefined if unsigned. */
  async signedTarget(
    path: string,
  ): Promise<{ length: number; sha256: string; custom: Record<string, unknown> } | undefined> {
    const placed = this.layout.classify(path);
    if ('error' in placed) return undefined;
    const t = (await this.store.targetsInBins(this.name, [placed.bin])).find((x) => x.path === path);
    return t && { length: t.length, sha256: t.sha256, custom: t.custom };
  }

  /** Checks a target path before anything is uploaded for it. */
  async assertNewTargetPath(path: string): Promise<void> {
    if (!(await this.isInitialized())) {
      throw new TufError(
        'TUF_NOT_INITIALIZED',
        `the ${this.name} repository has no root yet: run the root ceremony`,
      );
    }
    const placed = this.layout.classify(path);
    if ('error' in placed)
      throw new TufError(
        'TUF_TARGET_INVALID',
        `invalid target path ${JSON.stringify(path)}: ${placed.error}`,
      );
    if (await this.store.targetExists(this.name, path))
      throw new TufError('TUF_CONFLICT', `target ${path} already exists`);
  }

  /**
   * Development bootstrap: a 1-of-1 root signed by a key kept in the data dir. Never for production: whoever
   * reads the data dir can sign any root.
   */
  initializeWithDevRoot(devRootSigner: Ed25519Signer): Promise<boolean> {
    return this.root.initializeWithDevRoot(devRootSigner);
  }

  /**
   * Accepts a root signed offline (version 1 or a rotation), then re-signs every online role with the keys it
   * names, so clients that follow the new root find metadata signed by its keys.
   */
  publishRoot(candidate: SignedEnvelope | UntrustedEnvelope): Promise<RootSigned> {
    return this.root.publish(candidate);
  }

  /** Stores an accepted root together with every online role re-signed under it, in one transaction. */
  private async commitRoot(root: RootSigned, body: string): Promise<void> {
    await this.commitWithRetry(async (heads) => {
      // A concurrent publish may have stored this version while we checked: then this one is no longer next.
      const stored = heads.get('root')?.version ?? 0;
      if (stored >= root.version) {
        throw new TufError(
          'TUF_ROOT_REJECTED',
          `root rejected: version must be ${stored + 1}, got ${root.version}`,
        );
      }
      const rootWrite: MetadataWrite = { role: 'root', version: root.version, expiresAt: root.expires, body };
      return { targets: [], metadata: [rootWrite, ...(await this.resignAll(heads, root))] };
    });
  }

  /** Adds targets and publishes the bins they land in, one snapshot and one timestamp for the whole batch. */
  async addTargets(targets: NewTarget[]): Promise<void> {
    if (targets.length === 0) return;
    const placed = targets.map((t) => {
      const p = this.layout.classify(t.path);
      if ('error' in p)
        throw new TufError('TUF_TARGET_INVALID', `invalid target path ${JSON.stringify(t.path)}: ${p.error}`);
      if (!/^[0-9a-f]{64}$/.test(t.sha256) || !Number.isSafeInteger(t.length) || t.length < 0) {
        throw new TufError('TUF_TARGET_INVALID', `target ${t.path} needs a sha256 hex digest and a length`);
      }
      return { ...t, bin: p.bin };
    });
    if (new Set(placed.map((t) => t.path)).size !== placed.length) {
      throw new TufError('TUF_TARGET_INVALID', 'a batch names the same target path twice');
    }
    await this.commitWithRetry(async (heads) => {
      for (const t of placed) {
        if (await this.store.targetExists(this.name, t.path))
          throw new TufError('TUF_CONFLICT', `target ${t.path} already exists`);
      }
      const root = (await this.currentRoot()).signed;
      const bins = [...new Set(placed.map((t) => t.bin))];
      const existing = await this.store.targetsInBins(this.name, bins);
      const metadata: MetadataWrite[] = [];
      for (const bin of bins) {
        const inBin = [...existing.filter((t) => t.bin === bin), ...placed.filter((t) => t.bin === bin)];
        metadata.push(await this.signTargets(root, bin, nextVersion(heads, bin), targetMap(inBin)));
      }
      metadata.push(...(await this.signSnapshotAndTimestamp(root, heads, metadata)));
      return { targets: placed, metadata };
    });
  }

  /**
   * Re-signs every role whose expiry is within half its lifetime, and what depends on it (a bin needs a new
   * snapshot, a snapshot a new timestamp). Returns the roles re-signed. Safe to run from several processes.
   */
  async resignExpiring(now = Date.now()): Promise<string[]> {
    if (!(await this.isInitialized())) return [];
    const done: string[] = [];
    await this.commitWithRetry(async (heads) => {
      done.length = 0;
      const root = (await this.currentRoot()).signed;
      const due = (role: string, ttl: number): boolean => {
        const head = heads.get(role);
        return !head || Date.parse(head.expiresAt) - now < (ttl * 1000) / 2;
      };
      const metadata: MetadataWrite[] = [];
      for (const role of this.layout.allTargetsRoles()) {
        if (due(role, this.ttl.targetsTtl)) metadata.push(await this.resignTargetsRole(root, heads, role));
      }
      if (metadata.length > 0 || due('snapshot', this.ttl.snapshotTtl)) {
        metadata.push(...(await this.signSnapshotAndTimestamp(root, heads, metadata)));
      } else if (due('timestamp', this.ttl.timestampTtl)) {
        const snapshot = await this.store.latest(this.name, 'snapshot');
        if (!snapshot) throw new TufError('TUF_NOT_INITIALIZED', 'no snapshot to time-stamp');
        metadata.push(await this.signTimestamp(root, heads, snapshot.version, snapshot.body));
      }
      done.push(...metadata.map((m) => m.role));
      return { targets: [], metadata };
    });
    if (done.length > 0)
      this.logger.log(`re-signed ${done.length} role(s) before expiry: ${summarize(done)}`);
    const root = (await this.currentRoot()).signed;
    if (Date.parse(root.expires) - now < ROOT_WARNING_SECONDS * 1000) {
      this.logger.warn(
        `root version ${root.version} expires at ${root.expires}: run the root rotation ceremony`,
      );
    }
    return done;
  }

  /** Each role whose newest version is within its warning of expiry (expiry-warning.ts), or past it. */
  async nearingExpiry(now = Date.now()): Promise<ExpiringRole[]> {
    return nearingExpiry(await this.store.heads(this.name), this.ttl, now);
  }

  onlineKeys(): Promise<OnlineKeyView[]> {
    return this.root.onlineKeys();
  }

  /** Generates a new online key for a role; it signs once a root that lists it is published. */
  rotateOnlineKey(role: OnlineRole): Promise<OnlineKeyView> {
    return this.root.rotateOnlineKey(role);
  }

  /** The newest key the server holds for each online role: what the next root should list. */
  preferredOnlineKeys(): Promise<Record<OnlineRole, TufKey[]>> {
    return this.root.preferredOnlineKeys();
  }

  // --- signing -------------------------------------------------------------------------------------------

  private async commitWithRetry(
    build: (heads: Heads) => Promise<{ targets: StoredTarget[]; metadata: MetadataWrite[] }>,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const heads = await this.store.heads(this.name);
      const change = await build(heads);
      if (change.metadata.length === 0) return;
      try {
        await this.store.commit(this.name, change.targets, change.metadata);
      } catch (e) {
        if (!isUniqueViolation(e) || attempt >= MAX_ATTEMPTS) throw e;
        // Another process published first: rebuild on top of what it wrote.
        await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
        continue;
      }
      await this.announce(change.metadata);
      return;
    }
  }

  /**
   * Every write here (a root and what it re-signs, a release's bins, snapshot and timestamp, a re-sign before
   * expiry) passes through commitWithRetry, so this is the one place its events come from: one per role
   * version, after the commit (the publisher waits for an enclosing request's transaction, and never throws).
   */
  private async announce(metadata: MetadataWrite[]): Promise<void> {
    await this.events?.publishAll(
      metadata.map((m) => ({
        kind: 'tuf.metadata.resigned' as const,
        repository: 'image' as const,
        role: m.role,
        version: m.version,
        expires: m.expiresAt,
      })),
    );
  }

  private async resignAll(heads: Heads, root: RootSigned): Promise<MetadataWrite[]> {
    const metadata: MetadataWrite[] = [];
    for (const role of this.layout.allTargetsRoles())
      metadata.push(await this.resignTargetsRole(root, heads, role));
    metadata.push(...(await this.signSnapshotAndTimestamp(root, heads, metadata)));
    return metadata;
  }

  private async resignTargetsRole(root: RootSigned, heads: Heads, role: string): Promise<MetadataWrite> {
    const targets = this.layout.isBin(role)
      ? targetMap(await this.store.targetsInBins(this.name, [role]))
      : {};
    return this.signTargets(root, role, nextVersion(heads, role), targets);
  }

  private async signTargets(
    root: RootSigned,
    role: string,
    version: number,
    targets: Record<string, TargetFile>,
  ): Promise<MetadataWrite> {
    const signers = await this.root.signersFor(root, 'targets');
    const delegationKeys = Object.fromEntries(signers.map((s) => [s.keyId, s.tufKey]));
    const keyids = signers.map((s) => s.keyId);
    const signed: TargetsSigned = {
      _type: 'targets',
      spec_version: SPEC_VERSION,
      version,
      expires: tufExpiry(Date.now() + this.ttl.targetsTtl * 1000),
      targets,
    };
    if (role === 'targets') {
      signed.delegations = {
        keys: delegationKeys,
        roles: this.layout.families.map((f) => ({
          name: f.role,
          keyids,
          threshold: 1,
          terminating: true,
          paths: [f.pattern],
        })),
      };
    }
    const family = this.layout.families.find((f) => f.role === role);
    if (family) {
      signed.delegations = {
        keys: delegationKeys,
        succinct_roles: {
          keyids,
          threshold: 1,
          bit_length: this.layout.binBits,
          name_prefix: family.binPrefix,
        },
      };
    }
    return signMetadata(role, signed, signers);
  }

  private async signSnapshotAndTimestamp(
    root: RootSigned,
    heads: Heads,
    changed: MetadataWrite[],
  ): Promise<MetadataWrite[]> {
    const versions = new Map([...heads].map(([role, h]) => [role, h.version]));
    for (const m of changed) versions.set(m.role, m.version);
    const meta: SnapshotSigned['meta'] = {};
    for (const role of this.layout.allTargetsRoles()) {
      const v = versions.get(role);
      if (v === undefined) throw new TufError('TUF_NOT_INITIALIZED', `role ${role} has no metadata`);
      meta[`${role}.json`] = { version: v };
    }
    const signed: SnapshotSigned = {
      _type: 'snapshot',
      spec_version: SPEC_VERSION,
      version: nextVersion(heads, 'snapshot'),
      expires: tufExpiry(Date.now() + this.ttl.snapshotTtl * 1000),
      meta,
    };
    const snapshot = signMetadata('snapshot', signed, await this.root.signersFor(root, 'snapshot'));
    return [snapshot, await this.signTimestamp(root, heads, signed.version, snapshot.body)];
  }

  private async signTimestamp(
    root: RootSigned,
    heads: Heads,
    snapshotVersion: number,
    snapshotBody: string,
  ): Promise<MetadataWrite> {
    const signed = timestampOf(
      { version: snapshotVersion, body: snapshotBody },
      nextVersion(heads, 'timestamp'),
      tufExpiry(Date.now() + this.ttl.timestampTtl * 1000),
    );
    return signMetadata('timestamp', signed, await this.root.signersFor(root, 'timestamp'));
  }
}

function nextVersion(heads: Heads, role: string): number {
  return (heads.get(role)?.version ?? 0) + 1;
}

function targetMap(
  targets: Array<Pick<StoredTarget, 'path' | 'length' | 'sha256' | 'custom'>>,
): Record<string, TargetFile> {
  const map: Record<string, TargetFile> = {};
  for (const t of [...targets].sort((a, b) => a.path.localeCompare(b.path))) {
    map[t.path] = { length: t.length, hashes: { sha256: t.sha256 }, custom: t.custom };
  }
  return map;
}

function summarize(roles: string[]): string {
  return roles.length > 6 ? `${roles.slice(0, 5).join(', ')} and ${roles.length - 5} more` : roles.join(', ');
}
