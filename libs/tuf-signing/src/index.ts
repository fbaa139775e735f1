// TUF signing and key handling for every repository Otter runs, with no framework and no database: the
// offline root ceremony (apps/cli) loads this and nothing else of the server.
export { SPEC_VERSION, ONLINE_ROLES } from './tuf-types.js';
export type {
  OnlineRole,
  TufKey,
  RootSigned,
  TargetsSigned,
  SnapshotSigned,
  TimestampSigned,
  TargetFile,
  SignedEnvelope,
  UntrustedEnvelope,
} from './tuf-types.js';
export { Ed25519Signer, keyIdOf, verifySignature, isEd25519TufKey } from './ed25519.js';
export { tufExpiry } from './tuf-time.js';
export { createRootDraft, signRoot, checkRootTransition, roleSignatureStatus } from './root-ceremony.js';
export type { RootDraftInput, RoleSignatureStatus } from './root-ceremony.js';
export { onlineRootProblems } from './online-root-policy.js';
export { signMetadata, timestampOf } from './metadata-envelope.js';
export type { SignedMetadata } from './metadata-envelope.js';
export { RepositoryRoot } from './repository-root.js';
export type { RootStorage, RootFailure, RootFailureError, OnlineKeyView } from './repository-root.js';
export { OnlineKeyStore } from './online-key-store.js';
export { loadOrCreateDevRootKey } from './dev-root-key.js';
export { seal, open } from './secret-box.js';
export type { SealedBox } from './secret-box.js';
export type { SigningLog } from './signing-log.js';
