import { Logger } from '@nestjs/common';
import type { TufConfig } from '#otter/config';
import { isUniqueViolation } from '#otter/db';
import type { EventPublisher } from '#otter/events';
import {
  RepositoryRoot,
  type OnlineKeyStore,
  type RootSigned,
  type SignedEnvelope,
} from '#otter/tuf-signing';
import { DirectorError, directorError } from './director.errors.js';
import { DIRECTOR_ROOT_REPOSITORY, type DirectorMetadataStore } from './director-metadata.store.js';

/**
 * The director's one root, shared by every node, and its online keys. Checks, ceremony and key handling are
 * the image repository's (RepositoryRoot, #otter/tuf-signing); only the keys and the storage differ. A new
 * root re-signs nothing at once: each node's metadata is re-signed with the keys it names on the node's
 * next poll, so a root is the director's only repository-wide metadata and its only `tuf.metadata.resigned`
 * event (per-node re-signs on every poll would flood the stream: docs/events.md).
 */
export class DirectorRoot extends RepositoryRoot {
  private parsed?: RootSigned;

  constructor(
    private readonly store: DirectorMetadataStore,
    keys: OnlineKeyStore,
    ttl: Pick<TufConfig, 'rootTtl'>,
    events?: EventPublisher,
  ) {
    super(
      DIRECTOR_ROOT_REPOSITORY,
      {
        latestRootBody: async () => (await store.latestRoot())?.body,
        storeRoot: async (root, body) => {
          await insertRoot(store, root, body);
          // After the insert: the publisher holds it until an enclosing request's transaction commits.
          await events?.publish({
            kind: 'tuf.metadata.resigned',
            repository: 'director',
            role: 'root',
            version: root.version,
            expires: root.expires,
          });
        },
      },
      keys,
      directorError,
      new Logger('DirectorRoot'),
      ttl.rootTtl,
    );
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
    if (body === undefined) throw this.notInitialized();
    this.parsed = (JSON.parse(body) as SignedEnvelope<RootSigned>).signed;
    return this.parsed;
  }
}

/** A root version is stored once: a concurrent publish of the same version loses with a clear refusal. */
async function insertRoot(store: DirectorMetadataStore, root: RootSigned, body: string): Promise<void> {
  try {
    await store.insertRoot({ version: root.version, expiresAt: root.expires, body });
  } catch (e) {
    if (!isUniqueViolation(e)) throw e;
    throw new DirectorError(
      'DIRECTOR_ROOT_REJECTED',
      `root rejected: version ${root.version} was published meanwhile`,
    );
  }
}
