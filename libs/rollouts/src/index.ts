export { RolloutsModule } from './rollouts.module.js';
export type { RolloutsModuleOptions } from './rollouts.module.js';
export { RolloutService } from './rollout.service.js';
export { RolloutTicker } from './rollout-ticker.js';
export type { TickReport } from './rollout-ticker.js';
export { UpdateProgressService } from './update-progress.service.js';
export { RolloutError } from './rollout.errors.js';
export type { DirectorAssignments, AssignmentInput } from './director-assignments.port.js';
