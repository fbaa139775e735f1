import { Injectable, Logger } from '@nestjs/common';
import {
  evaluatePcrPolicy,
  parseTpm2bPublic,
  releaseProofPcrs,
  verifyQuote,
  type PcrPolicyResult,
  type TpmPublic,
} from '#otter/attestation';
import type {
  AttestationChallenge,
  AttestationRequest,
  DeviceReport,
  OtterEventOf,
  VerdictDto,
} from '#otter/contracts';
import { ReleaseService } from '#otter/releases';
import { EventPublisher } from '#otter/events';
import { nodeIds } from './node-events.js';
import { AttestationNonces } from './attestation-nonces.js';
import { numericKeys } from './enrollment.service.js';
import { NodeError } from './node.errors.js';
import { NodeMetrics } from './node-metrics.js';
import {
  NodeRepository,
  type NodeRecord,
  type VerdictMismatch,
  type VerdictRecord,
} from './node.repository.js';

/**
 * Remote attestation: a fresh nonce, a quote from the node's trusted AK over it, and a verdict on the quoted
 * PCRs against the firmware/boot values pinned at enrollment and the reference measurements the node's
 * release carries in its signed metadata. A quote that is not authentic is refused without a verdict; an
 * authentic quote of the wrong values is stored as a failing verdict. A passing verdict proves the release
 * (`releaseProven`, what a rollout counts as success) only when it matched reference measurements of PCRs the
 * pinned boot state does not already fix: matching the pinned PCRs alone says nothing about which release booted.
 */
@Injectable()
export class AttestationService {
  private readonly logger = new Logger(AttestationService.name);
  private readonly akCache = new Map<string, TpmPublic>();

  constructor(
    private readonly nodes: NodeRepository,
    private readonly nonces: AttestationNonces,
    private readonly releases: ReleaseService,
    private readonly metrics: NodeMetrics,
    private readonly publisher: EventPublisher,
  ) {}

  async challenge(node: NodeRecord, runningVersion?: string): Promise<AttestationChallenge> {
    const { nonce, expiresAt } = await this.nonces.issue(node.id);
    const reference = await this.referenceFor(node, runningVersion ?? node.runningVersion ?? undefined);
    const pcrs = [
      ...new Set([...Object.keys(node.pinnedPcrs).map(Number), ...Object.keys(reference ?? {}).map(Number)]),
    ];
    return { nonce, pcrs: pcrs.sort((a, b) => a - b), expiresAt: expiresAt.toISOString() };
  }

  async attest(node: NodeRecord, request: AttestationRequest): Promise<VerdictDto> {
    if (!(await this.nonces.consume(node.id, request.nonce))) {
      throw new NodeError('NONCE_INVALID', 'unknown, reused or expired nonce: ask for a new challenge');
    }
    const quote = verifyQuote({
      akPublic: this.attestationKey(node),
      attest: Buffer.from(request.quote.attest, 'base64'),
      signature: Buffer.from(request.quote.signature, 'base64'),
      expectedNonce: Buffer.from(request.nonce, 'hex'),
      pcrValues: numericKeys(request.quote.pcrValues),
      requiredPcrs: Object.keys(node.pinnedPcrs).map(Number),
      previous: node.tpmCounters ?? undefined,
    });
    // The quote is authentic from here on: its counters move the node's baseline forward.
    await this.nodes.update(node.id, {
      tpmCounters: { resetCount: quote.resetCount, restartCount: quote.restartCount, clock: quote.clock },
    });
    const version = request.runningVersion ?? node.runningVersion ?? undefined;
    const reference = await this.referenceFor(node, version);
    const values = Object.fromEntries(
      Object.entries(request.quote.pcrValues).map(([k, v]) => [k, v.toLowerCase()]),
    );
    let verdict: Omit<VerdictRecord, 'createdAt'>;
    let differences: PcrDifferences = { differingPcrs: [], missingPcrs: [] };
    if (version && !reference) {
      verdict = {
        nodeId: node.id,
        passed: false,
        reason: `release ${version} for ${node.hardwareId} is not signed`,
        pcrValues: values,
        releaseVersion: version,
        releaseProven: false,
        mismatches: [],
      };
    } else {
      const policy = evaluatePcrPolicy({
        pcrValues: numericKeys(values),
        pinned: numericKeys(node.pinnedPcrs),
        reference: numericKeys(reference ?? {}),
      });
      differences = { differingPcrs: policy.mismatches, missingPcrs: policy.missing };
      const proofPcrs = releaseProofPcrs(
        Object.keys(reference ?? {}).map(Number),
        Object.keys(node.pinnedPcrs).map(Number),
      );
      const proven = policy.pass && version !== undefined && proofPcrs.length > 0;
      verdict = {
        nodeId: node.id,
        passed: policy.pass,
        reason: !policy.pass
          ? describeMismatch(policy)
          : !version
            ? 'matches the pinned boot state (no release reported)'
            : proven
              ? `matches the pinned boot state and release ${version}'s measurements of PCR ${proofPcrs.join(', ')}`
              : `matches the pinned boot state only: release ${version} has no signed measurements beyond ` +
                'the pinned PCRs, so this does not prove it booted',
        pcrValues: values,
        releaseVersion: version ?? null,
        releaseProven: proven,
        mismatches: verdictMismatches(policy, node.pinnedPcrs, reference ?? {}),
      };
    }
    if (verdict.passed && version)
      await this.nodes.update(node.id, { runningVersion: version, integrityFailedAt: null });
    else if (verdict.passed) await this.nodes.update(node.id, { integrityFailedAt: null });
    const stored = await this.nodes.addVerdict(verdict);
    this.metrics.verdict(stored.passed);
    this.logger.log({ node: node.id, passed: stored.passed, reason: stored.reason }, 'attestation verdict');
    await this.publisher.publish(verdictEvent(node, stored, differences));
    const dto = toDto(stored);
    if (!stored.passed) throw new NodeError('ATTESTATION_FAILED', stored.reason, { verdict: dto });
    return dto;
  }

  /**
   * The node's parsed AK, kept across requests: parsing it and building its KeyObject costs about a third of a
   * quote verification. Keyed by the AK bytes too, so a re-enrolled node never meets its old key.
   */
  private attestationKey(node: NodeRecord): TpmPublic {
    const id = `${node.id}:${node.akPublic.toString('base64')}`;
    let parsed = this.akCache.get(id);
    if (!parsed) {
      parsed = parseTpm2bPublic(node.akPublic);
      if (this.akCache.size >= 10_000) this.akCache.delete(this.akCache.keys().next().value!);
      this.akCache.set(id, parsed);
    }
    return parsed;
  }

  /** Health and integrity reports; a failed integrity check fails the node's attestation until it attests clean. */
  async report(node: NodeRecord, report: DeviceReport): Promise<void> {
    await this.nodes.addReport({
      nodeId: node.id,
      kind: report.kind,
      ok: report.ok,
      event: report.event,
      detail: report.detail ?? '',
      reportedAt: report.at,
    });
    if (report.kind === 'integrity' && !report.ok) {
      await this.nodes.update(node.id, { integrityFailedAt: new Date().toISOString() });
      const stored = await this.nodes.addVerdict({
        nodeId: node.id,
        passed: false,
        reason: `integrity failure reported: ${report.event}${report.detail ? ` (${report.detail})` : ''}`,
        pcrValues: {},
        releaseVersion: node.runningVersion,
        releaseProven: false,
        mismatches: [],
      });
      this.metrics.verdict(false);
      await this.publisher.publish(verdictEvent(node, stored, { differingPcrs: [], missingPcrs: [] }));
    }
  }

  private async referenceFor(
    node: NodeRecord,
    version: string | undefined,
  ): Promise<Record<string, string> | undefined> {
    if (!version) return {};
    return this.releases.signedMeasurements(node.hardwareId, version);
  }
}

export function toDto(v: VerdictRecord): VerdictDto {
  return {
    nodeId: v.nodeId,
    passed: v.passed,
    reason: v.reason,
    pcrValues: v.pcrValues,
    releaseVersion: v.releaseVersion,
    releaseProven: v.releaseProven,
    createdAt: v.createdAt,
  };
}

type PcrDifferences = Pick<OtterEventOf<'node.attestation.verdict'>, 'differingPcrs' | 'missingPcrs'>;

function verdictEvent(
  node: NodeRecord,
  verdict: VerdictRecord,
  differences: PcrDifferences,
): OtterEventOf<'node.attestation.verdict'> {
  return {
    kind: 'node.attestation.verdict',
    ...nodeIds(node),
    at: verdict.createdAt,
    verdict: verdict.passed ? 'passed' : 'failed',
    reason: verdict.reason,
    ...differences,
    version: verdict.releaseVersion,
  };
}

/** Each PCR that failed the policy, quoted value next to the expected one; a PCR not quoted has none. */
function verdictMismatches(
  policy: PcrPolicyResult,
  pinned: Record<string, string>,
  reference: Record<string, string>,
): VerdictMismatch[] {
  const out: VerdictMismatch[] = policy.mismatches.map((m) => ({
    pcr: m.pcr,
    quoted: m.actual,
    reference: m.expected,
    source: m.source,
  }));
  for (const pcr of policy.missing) {
    const fromPinned = pinned[String(pcr)];
    out.push({
      pcr,
      quoted: null,
      reference: (fromPinned ?? reference[String(pcr)] ?? '').toLowerCase(),
      source: fromPinned !== undefined ? 'pinned' : 'reference',
    });
  }
  return out.sort((a, b) => a.pcr - b.pcr);
}

function describeMismatch(policy: {
  mismatches: Array<{ pcr: number; source: string }>;
  missing: number[];
}): string {
  const parts = policy.mismatches.map(
    (m) =>
      `PCR ${m.pcr} differs from the ${m.source === 'pinned' ? 'pinned boot value' : 'release reference'}`,
  );
  if (policy.missing.length > 0) parts.push(`PCRs ${policy.missing.join(', ')} not quoted`);
  return parts.join('; ') || 'PCR policy not met';
}
