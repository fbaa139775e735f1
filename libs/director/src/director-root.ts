import { Logger } from '@nestjs/common';
import type { TufConfig } from '#otter/config';
import { isUniqueViolation } from '#otter/db';
import {
  checkRootTransition,
  createRootDraft,
  newestOnlineKeys,
  onlineRootProblems,
  ONLINE_ROLES,
  retainedOnlineKeyIds,
  signRoot,
  tufExpiry,
  type Ed25519Signer,
  type OnlineKeyStore,
  type OnlineKeyView,
  type OnlineRole,
  type RootSigned,
  type SignedEnvelope,
  type TufKey,
  type UntrustedEnvelope,
} from '#otter/tuf';
import { DirectorError } from './director.errors.js';
import { DIRECTOR_ROOT_REPOSITORY, type DirectorMetadataStore } from './director-metadata.store.js';

/**
 * The director's one root, shared by every node, and its online keys. The root is made offline with the
 * same ceremony and checks as the image repository's (#otter/tuf); only the keys and the storage differ.
 * A new root re-signs nothing at once: each node's metadata is re-signed with the keys it names on the
 * node's next poll.
 */
export class DirectorRoot {
  private readonly logger = new Logger('DirectorRoot');
  private parsed?: RootSigned;

  constructor(
    private readonly store: DirectorMetadataStore,
    private readonly keys: OnlineKeyStore,
    private readonly ttl: Pick<TufConfig, 'rootTtl'>,
  ) {}

  async isInitialized(): Promise<boolean> {
    return !!(await this.store.latestRoot());
  }

  async current(): Promise<SignedEnvelope<RootSigned>> {
    const row = await this.store.latestRoot();
    if (!row) throw notInitialized();
    return JSON.parse(row.body) as SignedEnvelope<RootSigned>;
  }

  /** `N.root.json`, byte for byte as published. */
  async file(version: number): Promise<string> {
    const body = await this.store.body(DIRECTOR_ROOT_REPOSITORY, 'root', version);
    if (body === undefined) throw new DirectorError('DIRECTOR_METADATA_NOT_FOUND', `no ${version}.root.json`);
    return body;
  }

  /** The root of a given version, parsed once per process (polls check keys against it). */
  async at(version: number): Promise<RootSigned> {
    if (this.parsed?.version === version) return this.parsed;
    const body = await this.store.body(DIRECTOR_ROOT_REPOSITORY, 'root', version);
    if (body === undefined) throw notInitialized();
    this.parsed = (JSON.parse(body) as SignedEnvelope<RootSigned>).signed;
    return this.parsed;
  }

  /** Development bootstrap: a 1-of-1 root whose key sits in the data dir. Never for production. */
  async initializeWithDevRoot(devRootSigner: Ed25519Signer, rootTtl = this.ttl.rootTtl): Promise<boolean> {
    if (await this.isInitialized()) return false;
    await this.keys.ensureKeys(ONLINE_ROLES);
    const draft = createRootDraft({
      rootKeys: [devRootSigner.tufKey],
      rootThreshold: 1,
      onlineKeys: await this.preferredOnlineKeys(),
      expires: tufExpiry(Date.now() + rootTtl * 1000),
    });
    try {
      await this.publish(signRoot(draft, devRootSigner));
      return true;
    } catch (e) {
      if (await this.isInitialized()) return false; // another process initialized it first
      throw e;
    }
  }

  /**
   * Accepts a root signed offline (version 1 or a rotation) after the checks a client makes, plus: Otter
   * holds a key for every online role it names, and no online key is a root key.
   */
  async publish(candidate: SignedEnvelope | UntrustedEnvelope): Promise<RootSigned> {
    const trustedRow = await this.store.latestRoot();
    const trusted = trustedRow
      ? (JSON.parse(trustedRow.body) as SignedEnvelope<RootSigned>).signed
      : undefined;
    const problems = checkRootTransition(trusted, candidate);
    if (problems.length === 0) {
      const held = new Set((await this.keys.keys()).map((k) => k.info.keyId));
      problems.push(...onlineRootProblems(candidate.signed as unknown as RootSigned, held));
    }
    if (problems.length > 0) {
      throw new DirectorError('DIRECTOR_ROOT_REJECTED', `root rejected: ${problems.join('; ')}`, {
        problems,
      });
    }
    const root = candidate.signed as unknown as RootSigned;
    try {
      await this.store.insertRoot({
        version: root.version,
        expiresAt: root.expires,
        body: JSON.stringify({ signatures: candidate.signatures, signed: root }),
      });
    } catch (e) {
      if (!isUniqueViolation(e)) throw e;
      throw new DirectorError(
        'DIRECTOR_ROOT_REJECTED',
        `root rejected: version ${root.version} was published meanwhile`,
      );
    }
    this.logger.log(`published director root version ${root.version}`);
    const all = await this.keys.keys();
    const keep = retainedOnlineKeyIds(
      root,
      all.map((k) => k.info),
    );
    if (keep.size < all.length) {
      await this.keys.retain(keep);
      this.logger.log(`destroyed ${all.length - keep.size} director key(s) the new root no longer lists`);
    }
    return root;
  }

  async onlineKeys(): Promise<OnlineKeyView[]> {
    const row = await this.store.latestRoot();
    const root = row && (JSON.parse(row.body) as SignedEnvelope<RootSigned>).signed;
    return (await this.keys.keys()).map(({ signer, info }) => ({
      role: info.role,
      keyId: info.keyId,
      key: signer.tufKey,
      createdAt: info.createdAt,
      active: !!root?.roles[info.role].keyids.includes(info.keyId),
    }));
  }

  /** A new key for a role; it signs once a root that lists it is published. */
  async rotateOnlineKey(role: OnlineRole): Promise<OnlineKeyView> {
    const info = await this.keys.addKey(role);
    const key = (await this.keys.signer(info.keyId))!.tufKey;
    return { ...info, key, active: false };
  }

  async preferredOnlineKeys(): Promise<Record<OnlineRole, TufKey[]>> {
    const newest = newestOnlineKeys(await this.keys.keys());
    if ('missing' in newest) {
      throw new DirectorError('DIRECTOR_KEY_UNAVAILABLE', `no director key for ${newest.missing}`);
    }
    return newest;
  }

  /** The held keys of `role` that `root` names; at least its threshold, or the role cannot be signed. */
  async signersFor(root: RootSigned, role: OnlineRole): Promise<Ed25519Signer[]> {
    const signers: Ed25519Signer[] = [];
    for (const id of root.roles[role].keyids) {
      const s = await this.keys.signer(id);
      if (s) signers.push(s);
    }
    if (signers.length < root.roles[role].threshold) {
      throw new DirectorError(
        'DIRECTOR_KEY_UNAVAILABLE',
        `Otter holds ${signers.length} of the director ${role} keys the root names`,
      );
    }
    return signers;
  }
}

function notInitialized(): DirectorError {
  return new DirectorError(
    'DIRECTOR_NOT_INITIALIZED',
    'the director repository has no root yet: run the root ceremony',
  );
}
