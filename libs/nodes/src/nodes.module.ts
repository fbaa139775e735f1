import { Module } from '@nestjs/common';
import { IdentityModule } from '#otter/identity';
import { ReleasesModule } from '#otter/releases';
import { RetentionModule } from '#otter/retention';
import { TufModule } from '#otter/tuf';
import { AttestationNonces } from './attestation-nonces.js';
import { AttestationService } from './attestation.service.js';
import { DeviceIdentityService } from './device-identity.service.js';
import { EnrollmentRepository } from './enrollment.repository.js';
import { EnrollmentService } from './enrollment.service.js';
import { NodeFleetRepository } from './node-fleet.repository.js';
import { NodeMetrics } from './node-metrics.js';
import { NodeInventoryRepository } from './node-inventory.repository.js';
import { NodeListRepository } from './node-list.repository.js';
import { NodeRepository } from './node.repository.js';
import { NodeSightings } from './node-sightings.js';
import { NodeStoryService } from './node-story.service.js';
import { NodeReenrollmentService } from './node-reenrollment.service.js';
import { NodeService } from './node.service.js';
import { TrustedTpmCas } from './trusted-tpm-cas.js';

@Module({
  imports: [IdentityModule.forRoot(), TufModule, ReleasesModule, RetentionModule],
  providers: [
    NodeRepository,
    NodeFleetRepository,
    NodeMetrics,
    NodeListRepository,
    NodeInventoryRepository,
    NodeSightings,
    NodeStoryService,
    EnrollmentRepository,
    TrustedTpmCas,
    AttestationNonces,
    EnrollmentService,
    DeviceIdentityService,
    AttestationService,
    NodeService,
    NodeReenrollmentService,
  ],
  exports: [
    EnrollmentService,
    DeviceIdentityService,
    AttestationService,
    NodeService,
    NodeStoryService,
    NodeReenrollmentService,
  ],
})
export class NodesModule {}
