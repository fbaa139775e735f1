import { Inject, Injectable, Logger } from '@nestjs/common';
import type { NewOtterEvent, ReleaseDto } from '#otter/contracts';
import type { Db } from '#otter/db';
import { ReleaseService } from '#otter/releases';
import { EventPublisher } from '#otter/events';
import { decideAdmission } from './admission-gate.js';
import { AssignmentRestorer } from './assignment-restorer.js';
import {
  DIRECTOR_ASSIGNMENTS,
  type AssignmentInput,
  type DirectorAssignments,
} from './director-assignments.port.js';
import { insideWindow } from './maintenance-window.js';
import { inProgressTotal, percent, summarizeWave } from './rollout-progress.js';
import { IN_PROGRESS } from './rollout-states.js';
import { RolloutRepository, type RolloutRecord } from './rollout.repository.js';

export interface TickReport {
  rolloutId: string;
  /** Why nothing was done: another scheduler held the rollout, or it is no longer running. */
  skipped?: 'claimed-elsewhere' | 'not-running';
  admitted: number;
  askedToAttest: number;
  quarantined: number;
  succeeded: number;
  timedOut: number;
  wave: number;
  state: RolloutRecord['state'];
  stateReason: string | null;
}

/**
 * One scheduler tick over every running rollout. Each rollout is ticked in one transaction that starts by
 * claiming it (compare-and-set on its revision), so two schedulers ticking at once never both admit, and a
 * scheduler killed mid-tick leaves the transaction rolled back: nothing half-admitted, nothing lost.
 */
@Injectable()
export class RolloutTicker {
  private readonly logger = new Logger(RolloutTicker.name);

  constructor(
    private readonly rollouts: RolloutRepository,
    private readonly releases: ReleaseService,
    @Inject(DIRECTOR_ASSIGNMENTS) private readonly director: DirectorAssignments,
    private readonly restorer: AssignmentRestorer,
    private readonly publisher: EventPublisher,
  ) {}

  async tick(now = new Date()): Promise<TickReport[]> {
    const reports: TickReport[] = [];
    for (const id of await this.rollouts.idsInState('running')) reports.push(await this.tickRollout(id, now));
    return reports;
  }

  async tickRollout(id: string, now = new Date()): Promise<TickReport> {
    const seen = await this.rollouts.get(id);
    const empty = (skipped: TickReport['skipped']): TickReport => ({
      rolloutId: id,
      skipped,
      admitted: 0,
      askedToAttest: 0,
      quarantined: 0,
      succeeded: 0,
      timedOut: 0,
      wave: seen?.currentWave ?? 0,
      state: seen?.state ?? 'running',
      stateReason: seen?.stateReason ?? null,
    });
    if (!seen || seen.state !== 'running') return empty('not-running');
    const release = await this.releases.byId(seen.releaseId);
    if (!release) throw new Error(`rollout ${id} names release ${seen.releaseId}, which does not exist`);

    const previous = new Map((await this.releases.list(seen.hardwareId)).map((p) => [p.version, p]));
    // What the tick did, published once its transaction committed (a rolled-back tick did nothing).
    let events: NewOtterEvent[] = [];
    const report = await this.rollouts.transaction(async (trx) => {
      events = [];
      if (!(await this.rollouts.claim(id, seen.revision, trx))) return empty('claimed-elsewhere');
      return this.advance(seen, release, previous, now, trx, events);
    });
    if (!report.skipped) this.log(seen, report);
    await this.publisher.publishAll(events);
    return report;
  }

  private async advance(
    r: RolloutRecord,
    release: ReleaseDto,
    previous: ReadonlyMap<string, ReleaseDto>,
    now: Date,
    trx: Db,
    events: NewOtterEvent[],
  ): Promise<TickReport> {
    const nowIso = now.toISOString();
    const ids = { rolloutId: r.id, hardwareId: r.hardwareId, at: nowIso };
    const report: TickReport = {
      rolloutId: r.id,
      admitted: 0,
      askedToAttest: 0,
      quarantined: 0,
      succeeded: 0,
      timedOut: 0,
      wave: r.currentWave,
      state: 'running',
      stateReason: null,
    };

    // Success is a passing attestation of the new release's measurements after admission, not the agent's word.
    const proven = await this.rollouts.provenCommitted(r.id, release.version, trx);
    await this.rollouts.setNodeStates(
      r.id,
      proven,
      { state: 'succeeded', reason: null, finished: true },
      trx,
    );
    report.succeeded = proven.length;
    events.push(...proven.map((nodeId) => ({ kind: 'rollout.node.succeeded' as const, ...ids, nodeId })));

    const cutoff = new Date(now.getTime() - r.nodeDeadlineSeconds * 1000).toISOString();
    const overdue = await this.rollouts.nodesIn(r.id, IN_PROGRESS, trx);
    const late = overdue.filter((n) => n.admittedAt !== null && n.admittedAt < cutoff);
    for (const node of late) {
      const reason = `no proven success within ${r.nodeDeadlineSeconds} s of admission (last step: ${node.state})`;
      await this.rollouts.transitionNode(r.id, node.nodeId, IN_PROGRESS, 'failed', reason, true, trx);
      events.push({ kind: 'rollout.node.failed', ...ids, nodeId: node.nodeId, reason });
      await this.restorer.restore(node, release.hardwareId, previous, trx);
    }
    report.timedOut = late.length;

    let counts = await this.rollouts.counts(r.id, trx);
    for (let wave = 0; wave <= r.currentWave; wave++) {
      const s = summarizeWave(counts, wave);
      if (s.failed > 0 && s.effective > 0 && s.failed / s.effective >= r.failureThreshold) {
        const reason =
          `failure threshold: wave ${wave + 1} has ${s.failed} of ${s.effective} nodes failed ` +
          `(${percent(s.failed / s.effective)} >= ${percent(r.failureThreshold)})`;
        await this.rollouts.update(r.id, { state: 'paused', stateReason: reason }, trx);
        events.push({ kind: 'rollout.paused', ...ids, reason });
        return { ...report, state: 'paused', stateReason: reason };
      }
    }

    let wave = r.currentWave;
    const current = summarizeWave(counts, wave);
    const soakEnds = Date.parse(r.waveStartedAt ?? nowIso) + r.waves[wave]!.soakSeconds * 1000;
    const met = current.effective === 0 || current.succeeded / current.effective >= r.successThreshold;
    if (met && now.getTime() >= soakEnds) {
      if (wave < r.waves.length - 1) {
        wave += 1;
        await this.rollouts.update(r.id, { currentWave: wave, waveStartedAt: nowIso }, trx);
        report.wave = wave;
        events.push({ kind: 'rollout.wave.started', ...ids, wave: wave + 1 });
      } else if (inProgressTotal(counts) === 0) {
        const left = await this.rollouts.nodesIn(r.id, ['pending', 'waiting-attestation'], trx);
        await this.rollouts.setNodeStates(
          r.id,
          left.map((n) => n.nodeId),
          { state: 'cancelled', reason: 'the rollout completed without this node', finished: true },
          trx,
        );
        await this.rollouts.releaseMemberships(r.id, trx);
        await this.rollouts.update(r.id, { state: 'completed', stateReason: null, finishedAt: nowIso }, trx);
        events.push({ kind: 'rollout.completed', ...ids });
        return { ...report, state: 'completed' };
      }
    }

    if (!insideWindow(r.maintenanceWindow, now)) return report;
    counts = await this.rollouts.counts(r.id, trx);
    let slots = r.maxConcurrent === null ? Infinity : Math.max(0, r.maxConcurrent - inProgressTotal(counts));
    const candidates = await this.rollouts.candidates(r.id, wave, ['pending', 'waiting-attestation'], trx);
    const admitted: AssignmentInput[] = [];
    // Grouped by the version each node ran, so recording it is one UPDATE per group, not one per node.
    const byFromVersion = new Map<string | null, string[]>();
    for (const c of candidates) {
      const decision = decideAdmission(c.verdict, r.maxAttestationAgeSeconds, now);
      if (decision.kind === 'admit') {
        if (slots <= 0) continue;
        slots -= 1;
        admitted.push({
          nodeId: c.nodeId,
          hardwareId: release.hardwareId,
          releaseId: release.id,
          targetPath: release.targetPath,
          version: release.version,
          sha256: release.sha256,
          length: release.length,
          rolloutId: r.id,
        });
        events.push({
          kind: 'rollout.node.admitted',
          ...ids,
          nodeId: c.nodeId,
          wave: wave + 1,
          fromVersion: c.runningVersion,
        });
        const group = byFromVersion.get(c.runningVersion) ?? [];
        group.push(c.nodeId);
        byFromVersion.set(c.runningVersion, group);
      } else if (decision.kind === 'quarantine') {
        await this.rollouts.transitionNode(
          r.id,
          c.nodeId,
          [c.state],
          'quarantined',
          decision.reason,
          true,
          trx,
        );
        this.logger.warn(
          { rollout: r.id, node: c.nodeId, reason: decision.reason },
          'node quarantined: it cannot prove it booted what we expect',
        );
        events.push({ kind: 'node.quarantined', ...ids, nodeId: c.nodeId, reason: decision.reason });
        report.quarantined += 1;
      } else if (c.state === 'pending') {
        await this.rollouts.transitionNode(
          r.id,
          c.nodeId,
          ['pending'],
          'waiting-attestation',
          decision.reason,
          false,
          trx,
        );
        report.askedToAttest += 1;
      }
    }
    await this.director.assignMany(admitted, trx);
    for (const [fromVersion, nodeIds] of byFromVersion) {
      await this.rollouts.setNodeStates(
        r.id,
        nodeIds,
        { state: 'assigned', reason: null, admittedAt: nowIso, fromVersion },
        trx,
      );
    }
    report.admitted = admitted.length;
    return report;
  }

  private log(r: RolloutRecord, report: TickReport): void {
    if (report.state !== r.state) {
      this.logger.log(
        { rollout: r.id, from: r.state, to: report.state, reason: report.stateReason },
        `rollout ${report.state}`,
      );
    }
    if (report.wave !== r.currentWave)
      this.logger.log({ rollout: r.id, wave: report.wave + 1 }, 'wave started');
    if (report.admitted + report.succeeded + report.timedOut + report.quarantined > 0) {
      this.logger.log({ ...report }, 'rollout tick');
    }
  }
}
