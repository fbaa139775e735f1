import type { Ed25519Signer } from './ed25519.js';
import type { OnlineKeyStore } from './online-key-store.js';
import { newestOnlineKeys, onlineRootProblems, retainedOnlineKeyIds } from './online-root-policy.js';
import { checkRootTransition, createRootDraft, signRoot } from './root-ceremony.js';
import type { SigningLog } from './signing-log.js';
import { tufExpiry } from './tuf-time.js';
import {
  ONLINE_ROLES,
  type OnlineRole,
  type RootSigned,
  type SignedEnvelope,
  type TufKey,
  type UntrustedEnvelope,
} from './tuf-types.js';

/** Where a repository keeps its roots. Only the storage differs between Otter's repositories. */
export interface RootStorage {
  /** The newest root, byte for byte as published, or undefined before the first. */
  latestRootBody(): Promise<string | undefined>;
  /**
   * Stores a root that passed every check, with whatever the repository signs along with it. Throws (the
   * repository's own ROOT_REJECTED) when another process stored that version meanwhile.
   */
  storeRoot(root: RootSigned, body: string): Promise<void>;
}

/** The ways the root and key layer fails; each repository answers them under its own error codes. */
export type RootFailure = 'NOT_INITIALIZED' | 'ROOT_REJECTED' | 'KEY_UNAVAILABLE';

export type RootFailureError = (
  failure: RootFailure,
  message: string,
  details?: Record<string, unknown>,
) => Error;

export interface OnlineKeyView {
  role: OnlineRole;
  keyId: string;
  key: TufKey;
  createdAt: string;
  /** Listed for its role in the current root. */
  active: boolean;
}

/**
 * A repository's root and the online keys it names: what every repository Otter runs (image, director) does
 * the same way. A root is accepted after the checks a client makes (root-ceremony.ts) and the server's own
 * (online-root-policy.ts); once published, the online keys it replaced are destroyed. The online roles are
 * signed only by held keys the current root names, at least its threshold of them.
 */
export class RepositoryRoot {
  constructor(
    /** `image` or `director`: how messages name the repository. */
    readonly name: string,
    private readonly storage: RootStorage,
    private readonly keys: OnlineKeyStore,
    private readonly fail: RootFailureError,
    private readonly logger: SigningLog,
    /** How long a development root is valid (OTTER_TUF_ROOT_TTL). */
    private readonly devRootTtlSeconds: number,
  ) {}

  async isInitialized(): Promise<boolean> {
    return (await this.storage.latestRootBody()) !== undefined;
  }

  async current(): Promise<SignedEnvelope<RootSigned>> {
    const body = await this.storage.latestRootBody();
    if (body === undefined) throw this.notInitialized();
    return JSON.parse(body) as SignedEnvelope<RootSigned>;
  }

  /** What a request that needs a root gets before the first was published. */
  notInitialized(): Error {
    return this.fail('NOT_INITIALIZED', `the ${this.name} repository has no root yet: run the root ceremony`);
  }

  /**
   * Development bootstrap: a 1-of-1 root signed by a key kept in the data dir. Never for production: whoever
   * reads the data dir can sign any root. False when the repository has a root already.
   */
  async initializeWithDevRoot(devRootSigner: Ed25519Signer): Promise<boolean> {
    if (await this.isInitialized()) return false;
    await this.keys.ensureKeys(ONLINE_ROLES);
    const draft = createRootDraft({
      rootKeys: [devRootSigner.tufKey],
      rootThreshold: 1,
      onlineKeys: await this.preferredOnlineKeys(),
      expires: tufExpiry(Date.now() + this.devRootTtlSeconds * 1000),
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
   * holds a key for every online role it names, holds every key it names for them, and no online key is a
   * root key. Then stores it and destroys the online keys it replaced.
   */
  async publish(candidate: SignedEnvelope | UntrustedEnvelope): Promise<RootSigned> {
    const trustedBody = await this.storage.latestRootBody();
    const trusted =
      trustedBody === undefined ? undefined : (JSON.parse(trustedBody) as SignedEnvelope<RootSigned>).signed;
    const problems = checkRootTransition(trusted, candidate);
    if (problems.length === 0) {
      const held = new Set((await this.keys.keys()).map((k) => k.info.keyId));
      problems.push(...onlineRootProblems(candidate.signed as unknown as RootSigned, held));
    }
    if (problems.length > 0) {
      throw this.fail('ROOT_REJECTED', `root rejected: ${problems.join('; ')}`, { problems });
    }
    const root = candidate.signed as unknown as RootSigned;
    await this.storage.storeRoot(root, JSON.stringify({ signatures: candidate.signatures, signed: root }));
    this.logger.log(`published ${this.name} root version ${root.version}`);
    await this.retireUnlistedKeys(root);
    return root;
  }

  async onlineKeys(): Promise<OnlineKeyView[]> {
    const body = await this.storage.latestRootBody();
    const root = body === undefined ? undefined : (JSON.parse(body) as SignedEnvelope<RootSigned>).signed;
    return (await this.keys.keys()).map(({ signer, info }) => ({
      role: info.role,
      keyId: info.keyId,
      key: signer.tufKey,
      createdAt: info.createdAt,
      active: !!root?.roles[info.role].keyids.includes(info.keyId),
    }));
  }

  /** Generates a new online key for a role; it signs once a root that lists it is published. */
  async rotateOnlineKey(role: OnlineRole): Promise<OnlineKeyView> {
    const info = await this.keys.addKey(role);
    const key = (await this.keys.signer(info.keyId))!.tufKey;
    return { ...info, key, active: false };
  }

  /** The newest key held for each online role: what the next root should list. */
  async preferredOnlineKeys(): Promise<Record<OnlineRole, TufKey[]>> {
    const newest = newestOnlineKeys(await this.keys.keys());
    if ('missing' in newest) {
      throw this.fail('KEY_UNAVAILABLE', `no ${this.name} online key for ${newest.missing}`);
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
      throw this.fail(
        'KEY_UNAVAILABLE',
        `Otter holds ${signers.length} of the ${this.name} ${role} keys the root names`,
      );
    }
    return signers;
  }

  /**
   * After a rotation, destroys the online keys the new root replaced: those not listed and older than the
   * newest listed key of their role. Keys created since (pending a later rotation) are kept.
   */
  private async retireUnlistedKeys(root: RootSigned): Promise<void> {
    const all = await this.keys.keys();
    const keep = retainedOnlineKeyIds(
      root,
      all.map((k) => k.info),
    );
    if (keep.size < all.length) {
      await this.keys.retain(keep);
      this.logger.log(
        `destroyed ${all.length - keep.size} ${this.name} online key(s) the new root no longer lists`,
      );
    }
  }
}
