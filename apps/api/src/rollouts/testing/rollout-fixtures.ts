import { randomBytes, randomUUID } from 'node:crypto';
import { seedNodeRow, type Db } from '#otter/db';

/** Rows a rollout test needs, written straight into the database (no TPM, no uploads). */
export class RolloutFixtures {
  constructor(private readonly db: Db) {}

  async release(
    hardwareId: string,
    version: string,
  ): Promise<{ id: string; sha256: string; length: number }> {
    const id = randomUUID();
    const sha256 = randomBytes(32).toString('hex');
    const length = 1000 + Math.floor(Math.random() * 1000);
    await this.db
      .insertInto('releases')
      .values({
        id,
        hardware_id: hardwareId,
        version,
        target_path: `images/${hardwareId}/${version}`,
        sha256,
        length,
        blob_key: `test/${id}`,
        measurements: '{}',
        notes: '',
        created_at: new Date().toISOString(),
        created_by: 'test',
      })
      .execute();
    return { id, sha256, length };
  }

  node(
    hardwareId: string,
    runningVersion: string | null,
    labels: Record<string, string> = {},
  ): Promise<string> {
    return seedNodeRow(this.db, { hardwareId, runningVersion, labels });
  }

  async verdict(
    nodeId: string,
    passed: boolean,
    at: Date,
    releaseVersion: string | null = null,
  ): Promise<void> {
    await this.db
      .insertInto('attestation_verdicts')
      .values({
        id: randomUUID(),
        node_id: nodeId,
        passed: passed ? 1 : 0,
        reason: passed ? 'quote verified, PCRs match' : 'PCR 9 does not match the release measurements',
        pcr_values: '{}',
        release_version: releaseVersion,
        created_at: at.toISOString(),
      })
      .execute();
  }
}
