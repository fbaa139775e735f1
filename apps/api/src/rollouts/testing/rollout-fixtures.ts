import { randomBytes, randomUUID } from 'node:crypto';
import type { CreateRolloutRequest, RolloutNodeState, RolloutState } from '#otter/contracts';
import { seedNodeRow } from '#otter/db';
import type { ApiHarness } from '../../testing/api-harness.js';

/**
 * Rows a rollout test needs (no TPM). A release is signed into the image repository with reference
 * measurements, as `otter release push --measurements` would (a rollout refuses a release without them), and
 * recorded as a row; nodes and verdicts are rows written straight into the database.
 */
export class RolloutFixtures {
  constructor(private readonly api: Pick<ApiHarness, 'db' | 'publish'>) {}

  /** `measurements` default to a random PCR 9 value: a PCR outside the pinned boot PCRs, as a release measures. */
  async release(
    hardwareId: string,
    version: string,
    measurements: Record<string, string> = { 9: randomBytes(32).toString('hex') },
  ): Promise<{ id: string; sha256: string; length: number }> {
    const id = randomUUID();
    const targetPath = `images/${hardwareId}/${version}`;
    const image = randomBytes(1000 + Math.floor(Math.random() * 1000));
    const { sha256 } = await this.api.publish(targetPath, image, {
      hardware: hardwareId,
      version,
      measurements,
    });
    await this.api.db
      .insertInto('releases')
      .values({
        id,
        hardware_id: hardwareId,
        version,
        target_path: targetPath,
        sha256,
        length: image.length,
        blob_key: `test/${targetPath}`,
        measurements: JSON.stringify(measurements),
        notes: '',
        created_at: new Date().toISOString(),
        created_by: 'test',
      })
      .execute();
    return { id, sha256, length: image.length };
  }

  /**
   * A rollout as the API could not create it today (of a release without measurements, say: one started
   * before that check existed), written as rows: one wave of `nodes`, each in `nodeState`, admitted at
   * `admittedAt`. Returns its id.
   */
  async rolloutRows(
    release: { id: string; hardwareId: string },
    nodes: readonly string[],
    options: {
      state: RolloutState;
      nodeState: RolloutNodeState;
      admittedAt: Date;
      nodeDeadlineSeconds: number;
    },
  ): Promise<string> {
    const id = randomUUID();
    const now = new Date().toISOString();
    await this.api.db
      .insertInto('rollouts')
      .values({
        id,
        name: 'written as rows',
        release_id: release.id,
        hardware_id: release.hardwareId,
        selector: JSON.stringify({ nodes }),
        waves: JSON.stringify([{ percent: 100, soakSeconds: 0 }]),
        success_threshold: 1,
        failure_threshold: 1,
        max_attestation_age_seconds: 600,
        maintenance_window: null,
        max_concurrent: null,
        node_deadline_seconds: options.nodeDeadlineSeconds,
        state: options.state,
        state_reason: null,
        current_wave: 0,
        wave_started_at: options.admittedAt.toISOString(),
        revision: 1,
        created_by: 'test',
        created_at: now,
        started_at: options.admittedAt.toISOString(),
        finished_at: null,
        updated_at: now,
      })
      .execute();
    for (const nodeId of nodes) {
      await this.api.db
        .insertInto('rollout_memberships')
        .values({ node_id: nodeId, rollout_id: id })
        .execute();
      await this.api.db
        .insertInto('rollout_nodes')
        .values({
          rollout_id: id,
          node_id: nodeId,
          wave: 0,
          state: options.nodeState,
          reason: null,
          from_version: null,
          admitted_at: options.admittedAt.toISOString(),
          finished_at: null,
          updated_at: now,
        })
        .execute();
    }
    return id;
  }

  node(
    hardwareId: string,
    runningVersion: string | null,
    labels: Record<string, string> = {},
  ): Promise<string> {
    return seedNodeRow(this.api.db, { hardwareId, runningVersion, labels });
  }

  /**
   * A verdict as attestation stores it. A passing verdict naming a release proves it by default (the quote
   * matched its measurements); `releaseProven: false` is one that matched only the pinned boot PCRs.
   */
  async verdict(
    nodeId: string,
    passed: boolean,
    at: Date,
    releaseVersion: string | null = null,
    releaseProven = passed && releaseVersion !== null,
  ): Promise<void> {
    const reason = passed ? 'quote verified, PCRs match' : 'PCR 9 does not match the release measurements';
    await this.api.db
      .insertInto('attestation_verdicts')
      .values({
        id: randomUUID(),
        node_id: nodeId,
        passed: passed ? 1 : 0,
        reason,
        pcr_values: '{}',
        release_version: releaseVersion,
        release_proven: releaseProven ? 1 : 0,
        created_at: at.toISOString(),
      })
      .execute();
    // The node row keeps its newest verdict, as NodeRepository.addVerdict writes it.
    await this.api.db
      .updateTable('nodes')
      .set({
        last_verdict_passed: passed ? 1 : 0,
        last_verdict_reason: reason,
        last_verdict_at: at.toISOString(),
      })
      .where('id', '=', nodeId)
      .where((eb) =>
        eb.or([eb('last_verdict_at', 'is', null), eb('last_verdict_at', '<=', at.toISOString())]),
      )
      .execute();
  }
}

/**
 * A rollout of `version` to every `hardwareId` node in two waves (one node, then the rest), no soak, all must
 * succeed, paused at half failed, a passing attestation at most 10 min old: the smallest rollout that shows a
 * wave advance.
 */
export function twoWaveRollout(hardwareId: string, version: string, name: string): CreateRolloutRequest {
  return {
    name,
    hardwareId,
    version,
    selector: {},
    waves: [
      { count: 1, soakSeconds: 0 },
      { percent: 100, soakSeconds: 0 },
    ],
    successThreshold: 1,
    failureThreshold: 0.5,
    maxAttestationAgeSeconds: 600,
  };
}
