import type { DeltaBuildRecord } from './delta-build.repository.js';

/** The ids every delta-build event carries (docs/events.md). */
export function deltaEventIds(build: Pick<DeltaBuildRecord, 'id' | 'hardwareId' | 'from' | 'to'>): {
  buildId: string;
  hardwareId: string;
  fromVersion: string;
  toVersion: string;
} {
  return {
    buildId: build.id,
    hardwareId: build.hardwareId,
    fromVersion: build.from.version,
    toVersion: build.to.version,
  };
}
