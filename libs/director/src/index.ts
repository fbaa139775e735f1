export { DirectorModule, DirectorAssignmentsModule, DirectorInitializer } from './director.module.js';
export { DirectorRepository, POLL_HOLD_MS } from './director.repository.js';
export type { DirectorFile } from './director.repository.js';
export { DirectorAssignmentRepository } from './director-assignment.repository.js';
export type { DirectorExecutor } from './director-assignment.repository.js';
export type { AssignedImage, DirectorAssignment, DirectorAssignmentInput } from './director-assignment.js';
export type { DirectorTargetCustom } from './director-signing.js';
export { DirectorError } from './director.errors.js';
export type { DirectorErrorCode } from './director.errors.js';
