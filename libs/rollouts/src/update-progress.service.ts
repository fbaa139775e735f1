import { Injectable, Logger } from '@nestjs/common';
import type { DeviceInstructionsDto, NewOtterEvent, ReleaseDto, UpdateReport } from '#otter/contracts';
import { ValidationError } from '#otter/errors';
import { ReleaseService } from '#otter/releases';
import { EventPublisher } from '#otter/events';
import { AssignmentRestorer } from './assignment-restorer.js';
import { FINISHED, isForward, stateAfter } from './rollout-states.js';
import { RolloutTickTrigger } from './rollout-tick.trigger.js';
import { RolloutRepository } from './rollout.repository.js';

/**
 * The agent's side of a rollout: its update steps move its rollout node forward (never back, so late or
 * replayed reports change nothing), a failure or rollback points its assignment back at what it ran and asks
 * for a tick (the failure threshold acts at once), and it learns when it must attest.
 */
@Injectable()
export class UpdateProgressService {
  private readonly logger = new Logger(UpdateProgressService.name);

  constructor(
    private readonly rollouts: RolloutRepository,
    private readonly releases: ReleaseService,
    private readonly restorer: AssignmentRestorer,
    private readonly trigger: RolloutTickTrigger,
    private readonly publisher: EventPublisher,
  ) {}

  async record(node: { id: string; hardwareId: string }, report: UpdateReport): Promise<void> {
    if (report.bytes !== undefined) await this.checkBytes(node.hardwareId, report.version, report.bytes);
    const ok = report.step !== 'failed' && report.step !== 'rolled-back';
    const detail = [
      report.detail,
      report.bytes !== undefined ? `${report.bytes} bytes` : undefined,
      report.slot ? `slot ${report.slot}` : undefined,
    ]
      .filter(Boolean)
      .join('; ');
    await this.rollouts.addUpdateReport(node.id, {
      step: report.step,
      ok,
      detail: `${report.version}${detail ? ` (${detail})` : ''}`,
      reportedAt: report.at,
      version: report.version,
      bytes: report.bytes ?? null,
    });
    this.logger.log(
      { node: node.id, step: report.step, version: report.version, rollout: report.rolloutId },
      'update step',
    );
    const membership = await this.rollouts.activeMembership(node.id);
    // The rollout is Otter's record of the node's membership, never the id the device put in its report.
    const ours = membership && (!report.rolloutId || report.rolloutId === membership.rolloutId);
    await this.publisher.publish(nodeStepEvent(node, report, ours ? membership.rolloutId : undefined));
    if (!membership || (report.rolloutId && report.rolloutId !== membership.rolloutId)) return;
    const rollout = await this.rollouts.get(membership.rolloutId);
    if (!rollout) return;
    const release = await this.releases.byId(rollout.releaseId);
    if (!release || release.version !== report.version) return;
    const to = stateAfter(report.step);
    if (FINISHED.includes(membership.state) || !isForward(membership.state, to)) return;

    const reason = ok ? null : (report.detail ?? report.step);
    const previous: Map<string, ReleaseDto> = ok
      ? new Map()
      : new Map((await this.releases.list(node.hardwareId)).map((p) => [p.version, p]));
    await this.rollouts.transaction(async (trx) => {
      const moved = await this.rollouts.transitionNode(
        rollout.id,
        node.id,
        [membership.state],
        to,
        reason,
        !ok,
        trx,
      );
      if (moved && !ok) await this.restorer.restore(membership, node.hardwareId, previous, trx);
    });
    if (!ok || to === 'committed') await this.trigger.tickSoon();
  }

  /** The bytes a node says it downloaded for a release: at most that release's image, refused otherwise. */
  private async checkBytes(hardwareId: string, version: string, bytes: number): Promise<void> {
    const release = await this.releases.find(hardwareId, version);
    if (!release) {
      throw new ValidationError(`bytes: there is no release ${version} for ${hardwareId} to have downloaded`);
    }
    if (bytes > release.length) {
      throw new ValidationError(
        `bytes: at most the full image's ${release.length} bytes of release ${version}`,
        {
          fullBytes: release.length,
        },
      );
    }
  }

  async instructions(nodeId: string): Promise<DeviceInstructionsDto> {
    const membership = await this.rollouts.activeMembership(nodeId);
    if (membership?.state === 'waiting-attestation') return { attest: true, reason: membership.reason };
    return { attest: false, reason: null };
  }
}

/** The node-step event of a stored report; the reason of a failure is the agent's own text. */
function nodeStepEvent(
  node: { id: string; hardwareId: string },
  report: UpdateReport,
  rolloutId: string | undefined,
): NewOtterEvent {
  return {
    kind: 'rollout.node.step',
    nodeId: node.id,
    hardwareId: node.hardwareId,
    step: report.step,
    version: report.version,
    ...(rolloutId !== undefined && { rolloutId }),
    ...(report.bytes !== undefined && { bytes: report.bytes }),
    ...(report.detail !== undefined && { reason: report.detail }),
  };
}
