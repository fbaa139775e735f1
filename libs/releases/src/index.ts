export { ReleasesModule } from './releases.module.js';
export { ReleaseService } from './release.service.js';
export { ReleaseEvents } from './release-events.js';
export type { ReleasePublishedListener } from './release-events.js';
export { ReleaseError } from './release.errors.js';
export { parseReleaseFields, targetPathOf } from './release-fields.js';
export type { ReleaseFields } from './release-fields.js';
