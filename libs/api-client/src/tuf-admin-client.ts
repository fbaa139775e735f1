import type { PublishedRootDto, TufOnlineKeyDto, TufOnlineKeysDto } from '#otter/contracts';
import type { OnlineRole, RootSigned, SignedEnvelope } from '#otter/tuf';
import { OtterApiClient } from './otter-api-client.js';

/** The TUF root ceremony's server side and online key rotation (admin tokens only). */
export class TufAdminClient extends OtterApiClient {
  /** The image repository's current root: what an agent is provisioned with as its trusted root. */
  currentRoot(): Promise<SignedEnvelope<RootSigned>> {
    return this.request<SignedEnvelope<RootSigned>>('GET', 'api/v1/tuf/image/root');
  }

  /** Submits a signed root; the server answers 422 TUF_ROOT_REJECTED with `details.problems` if it is not acceptable. */
  publishRoot(root: SignedEnvelope<RootSigned>): Promise<PublishedRootDto> {
    return this.request<PublishedRootDto>('POST', 'api/v1/tuf/image/root', {
      body: JSON.stringify(root),
      headers: { 'content-type': 'application/json' },
    });
  }

  onlineKeys(): Promise<TufOnlineKeysDto> {
    return this.request<TufOnlineKeysDto>('GET', 'api/v1/tuf/image/online-keys');
  }

  /** Adds a new key for the role; it signs nothing until a published root lists it. */
  rotateOnlineKey(role: OnlineRole): Promise<TufOnlineKeyDto> {
    return this.request<TufOnlineKeyDto>(
      'POST',
      `api/v1/tuf/image/online-keys/${encodeURIComponent(role)}/rotate`,
    );
  }
}
