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
} from '#otter/contracts';
import { EnrollmentRepository } from './enrollment.repository.js';
import { NodeError } from './node.errors.js';
import { NodeRepository } from './node.repository.js';
import { TrustedTpmCas } from './trusted-tpm-cas.js';

const MAX_ATTEMPTS = 3;

/**
 * Enrollment proves three things before a node exists: its EK certificate chains to a trusted TPM
 * manufacturer, the EK it sent is the certified one, and its attestation key lives in that same TPM
 * (MakeCredential/ActivateCredential). The activation quote then pins the node's firmware and boot PCRs.
 */
@Injectable()
export class EnrollmentService {
  private readonly logger = new Logger(EnrollmentService.name);

  constructor(
    private readonly enrollments: EnrollmentRepository,
    private readonly nodes: NodeRepository,
    private readonly cas: TrustedTpmCas,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async start(request: EnrollmentRequest): Promise<EnrollmentChallenge> {
    await this.refuseWhenFull();
    const ekPublicBytes = Buffer.from(request.ekPublic, 'base64');
    const akPublicBytes = Buffer.from(request.akPublic, 'base64');
    const ekPublic = parseTpm2bPublic(ekPublicBytes);
    const ak = checkAttestationKey(parseTpm2bPublic(akPublicBytes));
    const ek = await verifyEkCertificate({
      certificate: Buffer.from(request.ekCertificate, 'base64'),
      ekPublic,
      trustedCas: this.cas.certificates(),
    });
    if (await this.nodes.findByEk(ek.ekPublicSha256)) {
      throw new NodeError('NODE_ALREADY_ENROLLED', 'a node with this TPM is already enrolled');
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
    });
    this.logger.log(
      { enrollment: id, hardware: request.hardwareId, ekSerial: ek.serialNumber },
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
    if (!(await this.enrollments.markActivated(id))) {
      throw new NodeError('ENROLLMENT_NOT_FOUND', 'this enrollment was already used');
    }
    const allowed = await this.enrollments.isAllowed(e.ekCertSerial, e.ekPublicSha256);
    const pinned = Object.fromEntries(
      this.config.devices.pinnedPcrs.map((p) => [
        String(p),
        request.quote.pcrValues[String(p)]!.toLowerCase(),
      ]),
    );
    const node = await this.nodes.create({
      hardwareId: e.hardwareId,
      state: allowed ? 'approved' : 'pending-approval',
      ekPublicSha256: e.ekPublicSha256,
      ekCertSerial: e.ekCertSerial,
      ekCertIssuer: e.ekCertIssuer,
      akPublic: e.akPublic,
      pinnedPcrs: pinned,
      runningVersion: e.runningVersion,
    });
    await this.nodes.update(node.id, {
      tpmCounters: { resetCount: quote.resetCount, restartCount: quote.restartCount, clock: quote.clock },
    });
    this.logger.log({ node: node.id, state: node.state }, 'enrollment activated');
    return { nodeId: node.id, state: node.state };
  }
}

export function numericKeys(values: Record<string, string>): Record<number, string> {
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [Number(k), v]));
}
