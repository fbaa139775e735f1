// The image repository: TUF metadata in the database, signed by #otter/tuf-signing (the protocol, keys and
// root checks shared with the director, without Nest or a database).
export { TufModule, IMAGE_REPOSITORY, ImageRepositoryInitializer } from './tuf.module.js';
export { TufRepository } from './tuf-repository.js';
export type { NewTarget, ServedTarget } from './tuf-repository.js';
export { TufError } from './tuf.errors.js';
export { nearingExpiry, ROOT_WARNING_SECONDS } from './expiry-warning.js';
export type { ExpiringRole } from './expiry-warning.js';
