export { NodesModule } from './nodes.module.js';
export { EnrollmentService } from './enrollment.service.js';
export { DeviceIdentityService } from './device-identity.service.js';
export { AttestationService } from './attestation.service.js';
export { NodeService } from './node.service.js';
export { NodeReenrollmentService } from './node-reenrollment.service.js';
export { NodeError } from './node.errors.js';
export type { NodeRecord } from './node.repository.js';
