import { BullModule } from '@nestjs/bullmq';
import { Module, type DynamicModule, type ModuleMetadata, type Type } from '@nestjs/common';
import { QUEUES } from '#otter/queue';
import { ReleasesModule } from '#otter/releases';
import { RetentionModule } from '#otter/retention';
import { AssignmentRestorer } from './assignment-restorer.js';
import { DIRECTOR_ASSIGNMENTS, type DirectorAssignments } from './director-assignments.port.js';
import { MeasuredReleaseCheck } from './measured-release.js';
import { RolloutTickTrigger } from './rollout-tick.trigger.js';
import { RolloutTicker } from './rollout-ticker.js';
import { RolloutMetrics } from './rollout-metrics.js';
import { RolloutStatsRepository } from './rollout-stats.repository.js';
import { RolloutRepository } from './rollout.repository.js';
import { RolloutService } from './rollout.service.js';
import { UpdateProgressService } from './update-progress.service.js';

export interface RolloutsModuleOptions {
  /** Modules that provide `assignments` (the director's). */
  imports: NonNullable<ModuleMetadata['imports']>;
  /** The director's assignment writer. */
  assignments: Type<DirectorAssignments>;
}

/**
 * Rollouts: the management service, the scheduler's ticker and the agents' progress. Needs the application's
 * DbModule, StorageModule and BullMQ root configuration. The director is passed in, so this lib does not
 * depend on how the director stores or signs anything.
 */
@Module({})
export class RolloutsModule {
  static register(options: RolloutsModuleOptions): DynamicModule {
    return {
      module: RolloutsModule,
      imports: [
        ReleasesModule,
        RetentionModule,
        BullModule.registerQueue({ name: QUEUES.rollouts }),
        ...options.imports,
      ],
      providers: [
        { provide: DIRECTOR_ASSIGNMENTS, useExisting: options.assignments },
        RolloutRepository,
        RolloutStatsRepository,
        RolloutMetrics,
        AssignmentRestorer,
        MeasuredReleaseCheck,
        RolloutTickTrigger,
        RolloutService,
        RolloutTicker,
        UpdateProgressService,
      ],
      exports: [RolloutService, RolloutTicker, UpdateProgressService],
    };
  }
}
