import { randomUUID } from 'node:crypto';
import { Injectable, Logger } from '@nestjs/common';
import type {
  RolloutMembershipDto,
  CreateRolloutRequest,
  ReleaseDto,
  RolloutDto,
  RolloutNodeDto,
  RolloutNodeState,
} from '#otter/contracts';
import { isUniqueViolation } from '#otter/db';
import { ReleaseService } from '#otter/releases';
import { EventPublisher } from '#otter/events';
import { AssignmentRestorer } from './assignment-restorer.js';
import { MeasuredReleaseCheck } from './measured-release.js';
import { DEFAULT_NODE_DEADLINE_SECONDS } from './rollout-spec.js';
import { summarizeWave } from './rollout-progress.js';
import { RolloutTickTrigger } from './rollout-tick.trigger.js';
import { RolloutRepository, type RolloutRecord, type RolloutNodeRecord } from './rollout.repository.js';
import { RolloutError } from './rollout.errors.js';
import { planWaves } from './wave-plan.js';

/** Abort cancels nodes that have not installed yet; the rest keep the release they run. */
const NOT_YET_UPDATED: readonly RolloutNodeState[] = [
  'pending',
  'waiting-attestation',
  'assigned',
  'downloading',
];

/** What release engineers do with rollouts: create, start, pause, resume, abort, exclude a node, look. */
@Injectable()
export class RolloutService {
  private readonly logger = new Logger(RolloutService.name);

  constructor(
    private readonly rollouts: RolloutRepository,
    private readonly releases: ReleaseService,
    private readonly restorer: AssignmentRestorer,
    private readonly trigger: RolloutTickTrigger,
    private readonly measured: MeasuredReleaseCheck,
    private readonly publisher: EventPublisher,
  ) {}

  async create(request: CreateRolloutRequest, createdBy: string): Promise<RolloutDto> {
    const release = await this.releases.find(request.hardwareId, request.version);
    if (!release) {
      throw new RolloutError(
        'ROLLOUT_INVALID',
        `no release ${request.version} for hardware ${request.hardwareId}: upload it first`,
      );
    }
    if (request.failureThreshold <= 0 || request.successThreshold <= 0) {
      throw new RolloutError('ROLLOUT_INVALID', 'thresholds must be above 0');
    }
    await this.measured.require(release);
    const id = randomUUID();
    await this.rollouts.insert({
      id,
      name: request.name,
      releaseId: release.id,
      hardwareId: release.hardwareId,
      selector: request.selector,
      waves: request.waves,
      successThreshold: request.successThreshold,
      failureThreshold: request.failureThreshold,
      maxAttestationAgeSeconds: request.maxAttestationAgeSeconds,
      maintenanceWindow: request.maintenanceWindow ?? null,
      maxConcurrent: request.maxConcurrent ?? null,
      nodeDeadlineSeconds: request.nodeDeadlineSeconds ?? DEFAULT_NODE_DEADLINE_SECONDS,
      state: 'draft',
      stateReason: null,
      currentWave: 0,
      waveStartedAt: null,
      createdBy,
      createdAt: new Date().toISOString(),
      startedAt: null,
      finishedAt: null,
    });
    this.logger.log({ rollout: id, release: release.id, version: release.version }, 'rollout created');
    await this.publisher.publish({
      kind: 'rollout.created',
      rolloutId: id,
      hardwareId: release.hardwareId,
      name: request.name,
      version: release.version,
      waves: request.waves.length,
    });
    return this.get(id);
  }

  /**
   * Resolves the target group, splits it into waves and takes every node's membership in one transaction: a
   * node already in an unfinished rollout makes the whole start fail with the conflict, and two rollouts
   * started at once cannot both take a node (the membership primary key decides).
   */
  async start(id: string): Promise<RolloutDto> {
    const r = await this.require(id);
    if (r.state !== 'draft') throw stateError(r, 'start');
    // Again at start: a draft created before this check existed, or before OTTER_PINNED_PCRS changed.
    const release = await this.releases.byId(r.releaseId);
    if (!release) throw new RolloutError('ROLLOUT_INVALID', `the rollout's release ${r.releaseId} is gone`);
    await this.measured.require(release);
    const wanted = r.selector.nodes ? new Set(r.selector.nodes) : null;
    const labels = Object.entries(r.selector.labels ?? {});
    const group = (await this.rollouts.activeNodes(r.hardwareId))
      .filter((n) => !wanted || wanted.has(n.id))
      .filter((n) => labels.every(([k, v]) => n.labels[k] === v))
      .map((n) => n.id);
    if (wanted) {
      const found = new Set(group);
      const missing = [...wanted].filter((n) => !found.has(n));
      if (missing.length > 0) {
        throw new RolloutError(
          'ROLLOUT_INVALID',
          `${missing.length} listed node(s) are not active ${r.hardwareId} nodes matching the selector`,
          { nodes: missing.slice(0, 20) },
        );
      }
    }
    if (group.length === 0) throw new RolloutError('ROLLOUT_INVALID', 'the selector matches no active node');
    const waves = planWaves(r.id, group, r.waves);
    const now = new Date().toISOString();
    try {
      await this.rollouts.transaction(async (trx) => {
        const taken = await this.rollouts.memberships(group, trx);
        if (taken.size > 0) throw conflict(taken);
        await this.rollouts.addNodes(r.id, waves, trx);
        if (
          !(await this.rollouts.claim(r.id, r.revision, trx, {
            state: 'running',
            startedAt: now,
            waveStartedAt: now,
          }))
        ) {
          throw new RolloutError('ROLLOUT_STATE_INVALID', 'the rollout changed while starting; try again');
        }
      });
    } catch (e) {
      if (isUniqueViolation(e)) {
        throw conflict(await this.rollouts.memberships(group));
      }
      throw e;
    }
    this.logger.log(
      { rollout: id, nodes: group.length, waves: waves.map((w) => w.length) },
      'rollout started',
    );
    const ids = { rolloutId: r.id, hardwareId: r.hardwareId, at: now };
    await this.publisher.publishAll([
      { kind: 'rollout.started', ...ids, nodes: group.length, waves: waves.map((w) => w.length) },
      { kind: 'rollout.wave.started', ...ids, wave: 1 },
    ]);
    await this.trigger.tickSoon();
    return this.get(id);
  }

  async pause(id: string, reason: string, by: string): Promise<RolloutDto> {
    const r = await this.require(id);
    if (r.state !== 'running') throw stateError(r, 'pause');
    const stateReason = `paused by ${by}: ${reason}`;
    await this.change(r, { state: 'paused', stateReason });
    await this.publisher.publish({ kind: 'rollout.paused', ...rolloutIds(r), reason: stateReason });
    return this.get(id);
  }

  /** Resumes a paused rollout; the next tick pauses it again if its failure threshold still holds. */
  async resume(id: string): Promise<RolloutDto> {
    const r = await this.require(id);
    if (r.state !== 'paused') throw stateError(r, 'resume');
    await this.change(r, { state: 'running', stateReason: null });
    await this.publisher.publish({ kind: 'rollout.resumed', ...rolloutIds(r) });
    await this.trigger.tickSoon();
    return this.get(id);
  }

  /** Nodes not yet updated lose their assignment (back to what they ran); updated nodes keep theirs. */
  async abort(id: string, reason: string, by: string): Promise<RolloutDto> {
    const r = await this.require(id);
    if (r.state !== 'running' && r.state !== 'paused' && r.state !== 'draft') throw stateError(r, 'abort');
    const previous = await this.previousReleases(r.hardwareId);
    await this.rollouts.transaction(async (trx) => {
      if (!(await this.rollouts.claim(r.id, r.revision, trx))) {
        throw new RolloutError('ROLLOUT_STATE_INVALID', 'the rollout changed while aborting; try again');
      }
      const cancelled = await this.rollouts.nodesIn(r.id, NOT_YET_UPDATED, trx);
      for (const node of cancelled) {
        if (node.state === 'assigned' || node.state === 'downloading') {
          await this.restorer.restore(node, r.hardwareId, previous, trx);
        }
      }
      await this.rollouts.setNodeStates(
        r.id,
        cancelled.map((n) => n.nodeId),
        { state: 'cancelled', reason: 'rollout aborted', finished: true },
        trx,
      );
      await this.rollouts.releaseMemberships(r.id, trx);
      await this.rollouts.update(
        r.id,
        {
          state: 'aborted',
          stateReason: `aborted by ${by}: ${reason}`,
          finishedAt: new Date().toISOString(),
        },
        trx,
      );
    });
    this.logger.warn({ rollout: id, by, reason }, 'rollout aborted');
    await this.publisher.publish({
      kind: 'rollout.aborted',
      ...rolloutIds(r),
      reason: `aborted by ${by}: ${reason}`,
    });
    return this.get(id);
  }

  /**
   * Takes a node out of the rollout (say, the one with a broken image): it leaves the wave's numbers, its
   * membership is released and, unless it already runs the new release, its assignment goes back.
   */
  async exclude(id: string, nodeId: string, reason: string, by: string): Promise<RolloutNodeDto> {
    const r = await this.require(id);
    if (r.state === 'completed' || r.state === 'aborted') throw stateError(r, 'exclude a node from');
    const node = await this.rollouts.node(id, nodeId);
    if (!node) throw new RolloutError('ROLLOUT_NODE_NOT_FOUND', `node ${nodeId} is not in rollout ${id}`);
    if (node.state === 'succeeded' || node.state === 'excluded') {
      throw new RolloutError('ROLLOUT_STATE_INVALID', `node ${nodeId} is ${node.state}; nothing to exclude`);
    }
    const previous = await this.previousReleases(r.hardwareId);
    await this.rollouts.transaction(async (trx) => {
      if (!(await this.rollouts.claim(r.id, r.revision, trx))) {
        throw new RolloutError('ROLLOUT_STATE_INVALID', 'the rollout changed meanwhile; try again');
      }
      await this.rollouts.transitionNode(
        id,
        nodeId,
        [node.state],
        'excluded',
        `excluded by ${by}: ${reason}`,
        true,
        trx,
      );
      if (NOT_YET_UPDATED.includes(node.state))
        await this.restorer.restore(node, r.hardwareId, previous, trx);
      await this.rollouts.releaseMembership(id, nodeId, trx);
    });
    this.logger.warn({ rollout: id, node: nodeId, by, reason }, 'node excluded from rollout');
    return toNodeDto((await this.rollouts.node(id, nodeId))!);
  }

  async get(id: string): Promise<RolloutDto> {
    return this.toDto(await this.require(id));
  }

  async list(): Promise<RolloutDto[]> {
    return Promise.all((await this.rollouts.list()).map((r) => this.toDto(r)));
  }

  /** The rollouts a node took part in, newest first: each rollout's state and the node's place in it. */
  async membershipsOf(nodeId: string, limit: number): Promise<RolloutMembershipDto[]> {
    const rows = await this.rollouts.membershipsOf(nodeId, limit);
    const versions = new Map<string, string | null>();
    for (const { rollout } of rows) {
      if (!versions.has(rollout.releaseId))
        versions.set(rollout.releaseId, (await this.releases.byId(rollout.releaseId))?.version ?? null);
    }
    return rows.map(({ rollout, node }) => ({
      rolloutId: rollout.id,
      name: rollout.name,
      rolloutState: rollout.state,
      version: versions.get(rollout.releaseId) ?? null,
      wave: node.wave,
      state: node.state,
      reason: node.reason,
      fromVersion: node.fromVersion,
      admittedAt: node.admittedAt,
      finishedAt: node.finishedAt,
      updatedAt: node.updatedAt,
    }));
  }

  async nodes(id: string): Promise<RolloutNodeDto[]> {
    await this.require(id);
    return (await this.rollouts.nodes(id)).map(toNodeDto);
  }

  private async change(r: RolloutRecord, change: Parameters<RolloutRepository['claim']>[3]): Promise<void> {
    const done = await this.rollouts.transaction((trx) => this.rollouts.claim(r.id, r.revision, trx, change));
    if (!done) throw new RolloutError('ROLLOUT_STATE_INVALID', 'the rollout changed meanwhile; try again');
    this.logger.log({ rollout: r.id, from: r.state, ...change }, 'rollout state changed');
  }

  private async previousReleases(hardwareId: string): Promise<Map<string, ReleaseDto>> {
    return new Map((await this.releases.list(hardwareId)).map((p) => [p.version, p]));
  }

  private async require(id: string): Promise<RolloutRecord> {
    const r = await this.rollouts.get(id);
    if (!r) throw new RolloutError('ROLLOUT_NOT_FOUND', `no rollout ${id}`);
    return r;
  }

  private async toDto(r: RolloutRecord): Promise<RolloutDto> {
    const release = await this.releases.byId(r.releaseId);
    const counts = await this.rollouts.counts(r.id);
    const { revision: _revision, ...rest } = r;
    return {
      ...rest,
      version: release?.version ?? '?',
      progress: r.waves.map((_, wave) => {
        const { effective: _effective, ...summary } = summarizeWave(counts, wave);
        return summary;
      }),
    };
  }
}

function rolloutIds(r: RolloutRecord): { rolloutId: string; hardwareId: string } {
  return { rolloutId: r.id, hardwareId: r.hardwareId };
}

function toNodeDto(n: RolloutNodeRecord): RolloutNodeDto {
  const { rolloutId: _rolloutId, ...dto } = n;
  return dto;
}

function stateError(r: RolloutRecord, action: string): RolloutError {
  return new RolloutError('ROLLOUT_STATE_INVALID', `rollout ${r.id} is ${r.state}; cannot ${action} it`, {
    state: r.state,
  });
}

function conflict(taken: Map<string, string>): RolloutError {
  const nodes = [...taken.entries()].slice(0, 20).map(([node, rollout]) => ({ node, rollout }));
  return new RolloutError(
    'ROLLOUT_CONFLICT',
    `${taken.size} node(s) already belong to an unfinished rollout (${[...new Set(taken.values())].join(', ')})`,
    { nodes },
  );
}
