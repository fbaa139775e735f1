import type { OnlineRole, RootSigned, SignedEnvelope, TufKey } from '#otter/tuf';
import { OtterApiClient } from './otter-api-client.js';

/** One online signing key the server holds (`GET /api/v1/tuf/image/online-keys`). */
export interface TufOnlineKeyDto {
  role: OnlineRole;
  keyId: string;
  key: TufKey;
  createdAt: string;
  /** Listed for its role in the current root. */
  active: boolean;
}

export interface TufOnlineKeysDto {
  keys: TufOnlineKeyDto[];
  /** What the next root should list for each online role (the newest key per role). */
  next: Record<OnlineRole, TufKey[]>;
}

export interface PublishedRootDto {
  version: number;
  expires: string;
}

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
