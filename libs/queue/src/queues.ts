/** Every queue and job name in Otter, in one place. */
export const QUEUES = {
  tufMaintenance: 'otter-tuf-maintenance',
  deltaBuild: 'otter-delta-build',
} as const;

export const JOBS = {
  /** Repeatable: re-sign TUF metadata that is close to expiry. */
  tufResign: 'tuf-resign',
} as const;
