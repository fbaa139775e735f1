import { Inject, Injectable } from '@nestjs/common';
import type { ReleaseDto } from '#otter/contracts';
import type { Db } from '#otter/db';
import { DIRECTOR_ASSIGNMENTS, type DirectorAssignments } from './director-assignments.port.js';
import type { RolloutNodeRecord } from './rollout.repository.js';

/**
 * Points a node's director assignment back at the release it ran before the rollout admitted it, so a node
 * that failed or rolled back (or was cancelled before installing) is not told to retry the same image.
 * `releases` (the hardware id's releases by version) is read before the caller's transaction: on SQLite a
 * query outside the transaction's connection would wait for it forever.
 */
@Injectable()
export class AssignmentRestorer {
  constructor(@Inject(DIRECTOR_ASSIGNMENTS) private readonly director: DirectorAssignments) {}

  async restore(
    node: Pick<RolloutNodeRecord, 'nodeId' | 'fromVersion'>,
    hardwareId: string,
    releases: ReadonlyMap<string, ReleaseDto>,
    db: Db,
  ): Promise<void> {
    const previous = node.fromVersion ? releases.get(node.fromVersion) : undefined;
    if (!previous) {
      await this.director.clear(node.nodeId, db);
      return;
    }
    await this.director.assign(
      {
        nodeId: node.nodeId,
        hardwareId,
        releaseId: previous.id,
        targetPath: previous.targetPath,
        version: previous.version,
        sha256: previous.sha256,
        length: previous.length,
        rolloutId: null,
      },
      db,
    );
  }
}
