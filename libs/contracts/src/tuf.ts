/** TUF administration contract (`/api/v1/tuf/image/...`, admin tokens only). */
export type OnlineRoleName = 'targets' | 'snapshot' | 'timestamp';

/** Otter signs with ed25519 only. */
export interface TufPublicKeyJson {
  keytype: 'ed25519';
  scheme: 'ed25519';
  keyval: { public: string };
}

/** One online signing key the server holds (`GET /api/v1/tuf/image/online-keys`). */
export interface TufOnlineKeyDto {
  role: OnlineRoleName;
  keyId: string;
  key: TufPublicKeyJson;
  createdAt: string;
  /** Listed for its role in the current root. */
  active: boolean;
}

export interface TufOnlineKeysDto {
  keys: TufOnlineKeyDto[];
  /** What the next root should list for each online role (the newest key per role). */
  next: Record<OnlineRoleName, TufPublicKeyJson[]>;
}

/** `POST /api/v1/tuf/image/root` answer; 422 TUF_ROOT_REJECTED with `details.problems` otherwise. */
export interface PublishedRootDto {
  version: number;
  expires: string;
}
