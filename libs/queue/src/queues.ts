/** Every queue and job name in Otter, in one place. */
export const QUEUES = {
  tufMaintenance: 'otter-tuf-maintenance',
  deltaBuild: 'otter-delta-build',
  rollouts: 'otter-rollouts',
  retention: 'otter-retention',
} as const;

export const JOBS = {
  /** Repeatable: re-sign TUF metadata that is close to expiry. */
  tufResign: 'tuf-resign',
  /**
   * Delta builds (docs/deltas.md). `delta-plan` (id = the build id) fetches both images, plans the delta and
   * adds a flow: `delta-assemble` (parent) waiting on one `delta-extent` child per changed extent.
   */
  deltaPlan: 'delta-plan',
  deltaExtent: 'delta-extent',
  deltaAssemble: 'delta-assemble',
  /** Debounced: publishes every verified patch waiting at that moment with one TUF addTargets call. */
  deltaPublish: 'delta-publish',
  /** Repeatable: re-queues builds whose job never reached Redis and patches still waiting to be published. */
  deltaSweep: 'delta-sweep',
  /**
   * Rollouts (docs/rollouts.md): repeatable every OTTER_ROLLOUT_TICK_SECONDS, plus an immediate one on events
   * (start, resume, a node's failure), deduplicated so a burst of events queues one tick.
   */
  rolloutTick: 'rollout-tick',
  /**
   * Repeatable every OTTER_RETENTION_EVERY: purges device reports, verdicts, download records and expired
   * enrollments past their retention (libs/retention).
   */
  retentionPurge: 'retention-purge',
} as const;
