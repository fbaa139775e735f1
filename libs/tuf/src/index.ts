export { TufModule, IMAGE_REPOSITORY, ImageRepositoryInitializer } from './tuf.module.js';
export { TufRepository } from './tuf-repository.js';
export type { NewTarget, ServedTarget, OnlineKeyView } from './tuf-repository.js';
export { TufError } from './tuf.errors.js';
export { Ed25519Signer, keyIdOf, verifySignature } from './ed25519.js';
export {
  createRootDraft,
  signRoot,
  checkRootTransition,
  countValidSignatures,
  roleSignatureStatus,
} from './root-ceremony.js';
export type { RootDraftInput, RoleSignatureStatus } from './root-ceremony.js';
export { tufExpiry } from './tuf-time.js';
export { ONLINE_ROLES, SPEC_VERSION } from './tuf-types.js';
export type {
  OnlineRole,
  RootSigned,
  SignedEnvelope,
  TufKey,
  TargetsSigned,
  TufSignature,
  SnapshotSigned,
  TimestampSigned,
  TargetFile,
  UntrustedEnvelope,
} from './tuf-types.js';
export { OnlineKeyStore } from './online-key-store.js';
export type { OnlineKeyInfo } from './online-key-store.js';
export { newestOnlineKeys, onlineRootProblems, retainedOnlineKeyIds } from './online-root-policy.js';
export { loadOrCreateDevRootKey } from './dev-root-key.js';
export { seal, open } from './secret-box.js';
export type { SealedBox } from './secret-box.js';
