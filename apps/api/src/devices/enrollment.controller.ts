import { Controller, HttpCode, Post } from '@nestjs/common';
import {
  activationRequestSchema,
  enrollmentRequestSchema,
  uuidParamSchema,
  type ActivationRequest,
  type ActivationResult,
  type EnrollmentChallenge,
  type EnrollmentRequest,
} from '#otter/contracts';
import type { ErrorCode } from '#otter/errors';
import { EnrollmentService } from '#otter/nodes';
import { ApiRoute } from '../api-contract/api-route.js';
import { activationResultSchema, enrollmentChallengeSchema } from '#otter/contracts';
import { JsonBody, ValidParam } from '../api-contract/valid-input.js';
import { RateLimited } from './device-rate-limits.js';
import { QUOTE_ERRORS } from './quote-errors.js';

const ENROLLMENT_ERRORS: ErrorCode[] = [
  'TPM_PUBLIC_MALFORMED',
  'TPM_PUBLIC_UNSUPPORTED',
  'TPM_ATTEST_MALFORMED',
  'TPM_SIGNATURE_MALFORMED',
  'TPM_SIGNATURE_UNSUPPORTED',
  'CREDENTIAL_INPUT_INVALID',
  'CREDENTIAL_EK_UNSUPPORTED',
  'EK_CERT_MALFORMED',
  'EK_CERT_UNTRUSTED',
  'EK_CERT_EXPIRED',
  'EK_CERT_KEY_MISMATCH',
  'EK_TEMPLATE_MISMATCH',
  'AK_REJECTED',
  'NODE_ALREADY_ENROLLED',
  'NODE_STATE_INVALID',
  'ENROLLMENT_CAPACITY_REACHED',
  'RELEASE_NOT_FOUND',
];
const ACTIVATION_ERRORS: ErrorCode[] = [
  ...QUOTE_ERRORS,
  'ENROLLMENT_NOT_FOUND',
  'ENROLLMENT_EXPIRED',
  'ENROLLMENT_PROOF_INVALID',
  'ENROLLMENT_TOO_MANY_ATTEMPTS',
  'NODE_ALREADY_ENROLLED',
  'PCR_POLICY_INVALID',
];

/** Enrollment is unauthenticated by design: the TPM's EK certificate and ActivateCredential are the proof. */
@Controller('api/v1/devices/enrollments')
export class EnrollmentController {
  constructor(private readonly enrollments: EnrollmentService) {}

  @ApiRoute({
    summary: 'Start enrolling a TPM: a credential to activate',
    response: enrollmentChallengeSchema,
    errors: ENROLLMENT_ERRORS,
  })
  @Post()
  @HttpCode(201)
  @RateLimited('enrollment')
  start(@JsonBody(enrollmentRequestSchema) body: EnrollmentRequest): Promise<EnrollmentChallenge> {
    return this.enrollments.start(body);
  }

  @ApiRoute({
    summary: 'Prove the AK lives with the EK, and pin the boot state',
    response: activationResultSchema,
    errors: ACTIVATION_ERRORS,
  })
  @Post(':id/activation')
  @HttpCode(200)
  @RateLimited('enrollment')
  activate(
    @ValidParam('id', uuidParamSchema) id: string,
    @JsonBody(activationRequestSchema) body: ActivationRequest,
  ): Promise<ActivationResult> {
    return this.enrollments.activate(id, body);
  }
}
