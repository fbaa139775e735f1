import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable, Logger } from '@nestjs/common';
import {
  checkAttestationKey,
  makeCredential,
  parseTpm2bPublic,
  verifyEkCertificate,
  verifyQuote,
} from '#otter/attestation';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import type {
  ActivationRequest,
  ActivationResult,
  EnrollmentChallenge,
  EnrollmentRequest,
  NodeIdentityState,
} from '#otter/contracts';
import { ValidationError } from '#otter/errors';
import { ekIssuerSerialSha256, ekKeySha256 } from '#otter/tpm-wire';
import { EventPublisher } from '#otter/events';
import { nodeIds } from './node-events.js';
import { EnrollmentRepository, type EnrollmentRecord } from './enrollment.repository.js';
import { NodeError } from './node.errors.js';
import { NodeRepository, type NodeRecord } from './node.repository.js';
import { REENROLLABLE_STATES } from './node-reenrollment.service.js';
import { TrustedTpmCas } from './trusted-tpm-cas.js';

const MAX_ATTEMPTS = 3;

/** How Otter names a TPM (libs/tpm-wire, ek-identity.ts): any of the three held by a node means that node. */
interface TpmIdentity {
  ekKeySha256: string;
  ekIssuerSerialSha256: string;
  ekPublicSha256: string;
}

const ALREADY_ENROLLED =
  'this TPM already belongs to a node (in any state, revoked and rejected included); a re-imaged board ' +
  'enrolls again only after an admin runs `otter node re-enroll NODE`';

/**
 * Enrollment proves three things before a node exists: its EK certificate chains to a trusted TPM
 * manufacturer, the EK it sent is the certified one (in the exact shape of a TCG EK template), and its
 * attestation key lives in that same TPM (MakeCredential/ActivateCredential). The activation quote then pins
 * the node's firmware and boot PCRs.
 *
 * One TPM is one node, for ever: a TPM that any node holds (by EK key, by EK certificate issuer + serial, or by
 * its exact EK public area) is refused, and never auto-approved, unless an admin opened that node's
 * re-enrollment window (NodeReenrollmentService); then the same TPM re-pins that node, once.
 */
@Injectable()
export class EnrollmentService {
  private readonly logger = new Logger(EnrollmentService.name);

  constructor(
    private readonly enrollments: EnrollmentRepository,
    private readonly nodes: NodeRepository,
    private readonly cas: TrustedTpmCas,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
    private readonly publisher: EventPublisher,
  ) {}

  async start(request: EnrollmentRequest): Promise<EnrollmentChallenge> {
    await this.refuseWhenFull();
    const ekPublicBytes = Buffer.from(request.ekPublic, 'base64');
    const akPublicBytes = Buffer.from(request.akPublic, 'base64');
    const ekPublic = parseTpm2bPublic(ekPublicBytes);
    if (ekPublic.type !== request.ekKind) {
      throw new ValidationError(
        `ekKind is ${request.ekKind} but ekPublic is an ${ekPublic.type.toUpperCase()} key`,
      );
    }
    const ak = checkAttestationKey(parseTpm2bPublic(akPublicBytes));
    const ek = await verifyEkCertificate({
      certificate: Buffer.from(request.ekCertificate, 'base64'),
      ekPublic,
      trustedCas: this.cas.certificates(),
    });
    const tpm: TpmIdentity = {
      ekKeySha256: ek.ekKeySha256,
      ekIssuerSerialSha256: ek.issuerSerialSha256,
      ekPublicSha256: ek.ekPublicSha256,
    };
    const reenroll = await this.reenrollTarget(tpm);
    if (reenroll && reenroll.hardwareId !== request.hardwareId) {
      throw new NodeError(
        'NODE_STATE_INVALID',
        `node ${reenroll.id} is hardware ${reenroll.hardwareId}: a re-enrollment keeps the hardware id`,
      );
    }
    const secret = randomBytes(32);
    const credential = makeCredential({ ekPublic, akName: ak.name, secret });
    const id = randomUUID();
    const nonce = randomBytes(32).toString('hex');
    const expiresAt = new Date(Date.now() + this.config.devices.enrollmentTtl * 1000).toISOString();
    await this.enrollments.create({
      id,
      hardwareId: request.hardwareId,
      ekKind: request.ekKind,
      ekPublic: ekPublicBytes,
      ekPublicSha256: ek.ekPublicSha256,
      ekCertSerial: ek.serialNumber,
      ekCertIssuer: ek.issuer,
      akPublic: akPublicBytes,
      secretSha256: createHash('sha256').update(secret).digest('hex'),
      nonce,
      runningVersion: request.runningVersion ?? null,
      expiresAt,
      reenrollNodeId: reenroll?.id ?? null,
    });
    this.logger.log(
      {
        enrollment: id,
        hardware: request.hardwareId,
        ekSerial: ek.serialNumber,
        ekTemplate: ek.template,
        ...(reenroll && { reenrolls: reenroll.id }),
      },
      'enrollment challenged',
    );
    return {
      enrollmentId: id,
      credentialBlob: credential.credentialBlob.toString('base64'),
      nonce,
      pcrs: this.config.devices.pinnedPcrs,
      expiresAt,
    };
  }

  /**
   * At most OTTER_MAX_OPEN_ENROLLMENTS challenges wait for an answer at once, checked before any TPM evidence is
   * read, so a flood of starts cannot grow the table or the work past it. Concurrent starts can each pass the
   * check: the bound is soft by at most the number of starts in flight.
   */
  private async refuseWhenFull(): Promise<void> {
    const max = this.config.devices.maxOpenEnrollments;
    const open = await this.enrollments.openSummary(new Date());
    if (open.count < max) return;
    const retryAfterSeconds = Math.max(1, Math.ceil((Date.parse(open.earliestExpiry!) - Date.now()) / 1000));
    this.logger.warn({ open: open.count, max }, 'enrollment refused: too many open enrollments');
    throw new NodeError(
      'ENROLLMENT_CAPACITY_REACHED',
      `too many enrollments are open (${open.count} of at most ${max}): retry in ${retryAfterSeconds} s`,
      { retryAfterSeconds, open: open.count, max },
    );
  }

  async activate(id: string, request: ActivationRequest): Promise<ActivationResult> {
    const e = await this.enrollments.get(id);
    if (!e || e.state !== 'challenged')
      throw new NodeError('ENROLLMENT_NOT_FOUND', 'no open enrollment with this id');
    if (Date.parse(e.expiresAt) < Date.now())
      throw new NodeError('ENROLLMENT_EXPIRED', 'the enrollment challenge expired: enroll again');
    if (e.attempts >= MAX_ATTEMPTS)
      throw new NodeError('ENROLLMENT_TOO_MANY_ATTEMPTS', 'too many wrong answers: enroll again');
    const answer = createHash('sha256').update(Buffer.from(request.secret, 'base64')).digest();
    if (!timingSafeEqual(answer, Buffer.from(e.secretSha256, 'hex'))) {
      await this.enrollments.recordFailedAttempt(id);
      throw new NodeError(
        'ENROLLMENT_PROOF_INVALID',
        'the credential was not activated by the TPM that holds this EK and AK',
      );
    }
    const quote = verifyQuote({
      akPublic: parseTpm2bPublic(e.akPublic),
      attest: Buffer.from(request.quote.attest, 'base64'),
      signature: Buffer.from(request.quote.signature, 'base64'),
      expectedNonce: Buffer.from(e.nonce, 'hex'),
      pcrValues: numericKeys(request.quote.pcrValues),
      requiredPcrs: this.config.devices.pinnedPcrs,
    });
    const pinned = Object.fromEntries(
      this.config.devices.pinnedPcrs.map((p) => [
        String(p),
        request.quote.pcrValues[String(p)]!.toLowerCase(),
      ]),
    );
    const tpmCounters = {
      resetCount: quote.resetCount,
      restartCount: quote.restartCount,
      clock: quote.clock,
    };
    const tpm = identityOf(e);
    if (e.reenrollNodeId) return this.reenroll(e, tpm, { pinned, tpmCounters });

    // Checked again: another enrollment of this TPM may have made a node since this one started.
    if ((await this.nodes.findTpmHolders(tpm)).length > 0) {
      throw new NodeError('NODE_ALREADY_ENROLLED', ALREADY_ENROLLED);
    }
    if (!(await this.enrollments.markActivated(id))) {
      throw new NodeError('ENROLLMENT_NOT_FOUND', 'this enrollment was already used');
    }
    // Only reached for a TPM no node holds: an allow-list entry never admits a known TPM.
    const allowed = await this.enrollments.isAllowed(tpm);
    const node = await this.nodes.create({
      hardwareId: e.hardwareId,
      state: allowed ? 'approved' : 'pending-approval',
      ekPublicSha256: e.ekPublicSha256,
      ekKeySha256: tpm.ekKeySha256,
      ekIssuerSerialSha256: tpm.ekIssuerSerialSha256,
      ekCertSerial: e.ekCertSerial,
      ekCertIssuer: e.ekCertIssuer,
      akPublic: e.akPublic,
      pinnedPcrs: pinned,
      runningVersion: e.runningVersion,
    });
    // The unique indexes: a concurrent enrollment of the same TPM made its node first.
    if (!node) throw new NodeError('NODE_ALREADY_ENROLLED', ALREADY_ENROLLED);
    await this.nodes.update(node.id, { tpmCounters });
    this.logger.log({ node: node.id, state: node.state }, 'enrollment activated');
    await this.publisher.publish({
      kind: 'node.enrolled',
      ...nodeIds(node),
      state: node.state,
      reenrolled: false,
    });
    return { nodeId: node.id, state: node.state };
  }

  /**
   * The node whose open re-enrollment window this TPM may use, or null when no node holds the TPM. Refuses
   * (NODE_ALREADY_ENROLLED) a TPM held by any node otherwise: one TPM, one node, for ever.
   */
  private async reenrollTarget(tpm: TpmIdentity): Promise<NodeRecord | null> {
    const holders = await this.nodes.findTpmHolders(tpm);
    if (holders.length === 0) return null;
    const [node] = holders;
    if (holders.length === 1 && node && reenrollable(node, tpm, new Date().toISOString())) return node;
    throw new NodeError('NODE_ALREADY_ENROLLED', ALREADY_ENROLLED);
  }

  /** The admin-approved path: the same TPM re-pins its node (same id and history), once. */
  private async reenroll(
    e: EnrollmentRecord,
    tpm: TpmIdentity,
    proven: {
      pinned: Record<string, string>;
      tpmCounters: { resetCount: number; restartCount: number; clock: bigint };
    },
  ): Promise<ActivationResult> {
    const now = new Date().toISOString();
    const node = await this.nodes.get(e.reenrollNodeId!);
    if (!node || !reenrollable(node, tpm, now)) {
      throw new NodeError(
        'NODE_ALREADY_ENROLLED',
        `the re-enrollment window of this node is closed: ${ALREADY_ENROLLED}`,
      );
    }
    if (!(await this.enrollments.markActivated(e.id))) {
      throw new NodeError('ENROLLMENT_NOT_FOUND', 'this enrollment was already used');
    }
    // Admitted before, admitted again (the admin asked); the board still proves its new device key next.
    const state: NodeIdentityState = node.state === 'pending-approval' ? 'pending-approval' : 'approved';
    const done = await this.nodes.completeReenrollment(
      node.id,
      { ekKeySha256: tpm.ekKeySha256, fromState: node.state, now },
      state,
      {
        ekPublicSha256: e.ekPublicSha256,
        akPublic: e.akPublic,
        pinnedPcrs: proven.pinned,
        runningVersion: e.runningVersion,
        tpmCounters: proven.tpmCounters,
      },
    );
    if (!done) {
      throw new NodeError(
        'NODE_ALREADY_ENROLLED',
        `the re-enrollment window of this node closed meanwhile: ${ALREADY_ENROLLED}`,
      );
    }
    this.logger.warn(
      {
        audit: 'node.reenroll.completed',
        node: node.id,
        enrollment: e.id,
        from: node.state,
        to: state,
        openedBy: node.reenrollBy,
      },
      'node re-enrolled: the same TPM proved itself again; new AK and boot PCRs pinned, device key dropped',
    );
    await this.publisher.publish({ kind: 'node.enrolled', ...nodeIds(node), state, reenrolled: true });
    return { nodeId: node.id, state };
  }
}

/** An open window of this node, for this very TPM (its EK key and certificate), in a state that allows it. */
function reenrollable(node: NodeRecord, tpm: TpmIdentity, now: string): boolean {
  return (
    node.reenrollUntil !== null &&
    node.reenrollUntil > now &&
    REENROLLABLE_STATES.includes(node.state) &&
    node.ekKeySha256 === tpm.ekKeySha256 &&
    node.ekIssuerSerialSha256 === tpm.ekIssuerSerialSha256
  );
}

/** The names of the TPM an enrollment proved, from what its start stored (the same the start computed). */
function identityOf(e: EnrollmentRecord): TpmIdentity {
  return {
    ekKeySha256: ekKeySha256(parseTpm2bPublic(e.ekPublic)),
    ekIssuerSerialSha256: ekIssuerSerialSha256(e.ekCertIssuer, e.ekCertSerial),
    ekPublicSha256: e.ekPublicSha256,
  };
}

export function numericKeys(values: Record<string, string>): Record<number, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [Number(k), v]));
}
