import type { PublishedRootDto, TufOnlineKeyDto, TufOnlineKeysDto } from '#otter/contracts';
import type { OnlineRole, RootSigned, SignedEnvelope } from '#otter/tuf-signing';
import type { ClientSettings } from './client-settings.js';
import { OtterApiClient } from './otter-api-client.js';

/** The two TUF repositories Otter signs: which images exist (`image`), and which one each node runs (`director`). */
export const TUF_REPOSITORIES = ['image', 'director'] as const;
export type TufRepositoryName = (typeof TUF_REPOSITORIES)[number];

/**
 * The TUF root ceremony's server side and online key rotation (admin tokens only), for one repository:
 * the image repository unless told otherwise. Both repositories answer the same requests under
 * `/api/v1/tuf/<repository>`; a root refused is 422 TUF_ROOT_REJECTED (image) or DIRECTOR_ROOT_REJECTED.
 */
export class TufAdminClient extends OtterApiClient {
  constructor(
    settings: ClientSettings,
    readonly repository: TufRepositoryName = 'image',
  ) {
    super(settings);
  }

  /** The repository's current root: what an agent is provisioned with as its trusted root. */
  currentRoot(): Promise<SignedEnvelope<RootSigned>> {
    return this.request<SignedEnvelope<RootSigned>>('GET', this.path('root'));
  }

  /** Submits a signed root; the server answers 422 with `details.problems` if it is not acceptable. */
  publishRoot(root: SignedEnvelope<RootSigned>): Promise<PublishedRootDto> {
    return this.request<PublishedRootDto>('POST', this.path('root'), {
      body: JSON.stringify(root),
      headers: { 'content-type': 'application/json' },
    });
  }

  onlineKeys(): Promise<TufOnlineKeysDto> {
    return this.request<TufOnlineKeysDto>('GET', this.path('online-keys'));
  }

  /** Adds a new key for the role; it signs nothing until a published root lists it. */
  rotateOnlineKey(role: OnlineRole): Promise<TufOnlineKeyDto> {
    return this.request<TufOnlineKeyDto>('POST', this.path(`online-keys/${encodeURIComponent(role)}/rotate`));
  }

  /**
   * After a database restore: the director re-signs every node's metadata, with a newer version, on the
   * node's next poll (the restored rows would look like a rollback to the nodes). Always the director: the
   * image repository keeps no per-node metadata.
   */
  invalidateDirectorMetadata(): Promise<{ nodes: number }> {
    return this.request<{ nodes: number }>('POST', 'api/v1/tuf/director/metadata/invalidate');
  }

  private path(rest: string): string {
    return `api/v1/tuf/${this.repository}/${rest}`;
  }
}
