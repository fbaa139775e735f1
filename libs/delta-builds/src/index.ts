export { DeltaBuildsModule } from './delta-builds.module.js';
export { DeltaBuildService, toDto } from './delta-build.service.js';
export type { SignedImage } from './delta-build.service.js';
export { DeltaBuildRepository, FINAL_STATES } from './delta-build.repository.js';
export type { DeltaBuildRecord, ImageRef, NewDeltaBuild } from './delta-build.repository.js';
export {
  DELTA_TARGET_FORMAT,
  deltaBlobKey,
  deltaBuildId,
  deltaFlowJobIds,
  deltaPublishJob,
  deltaTargetPath,
  deltaWorkKeys,
  sha256Hex,
} from './delta-build-names.js';
export { deltaEventIds } from './delta-build-events.js';
