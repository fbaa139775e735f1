import { Body, Controller, Headers, HttpCode, Param, ParseUUIDPipe, Post } from '@nestjs/common';
import type { ActivationResult, EnrollmentChallenge } from '#otter/contracts';
import { EnrollmentService } from '#otter/nodes';
import { parseBody, requireJson } from '../common/request-body.js';
import { RateLimited } from './device-rate-limits.js';
import { activationRequest, enrollmentRequest } from './device-requests.js';

/** Enrollment is unauthenticated by design: the TPM's EK certificate and ActivateCredential are the proof. */
@Controller('api/v1/devices/enrollments')
export class EnrollmentController {
  constructor(private readonly enrollments: EnrollmentService) {}

  @Post()
  @HttpCode(201)
  @RateLimited('enrollment')
  start(
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<EnrollmentChallenge> {
    requireJson(type);
    return this.enrollments.start(parseBody(enrollmentRequest, body));
  }

  @Post(':id/activation')
  @HttpCode(200)
  @RateLimited('enrollment')
  activate(
    @Param('id', new ParseUUIDPipe()) id: string,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<ActivationResult> {
    requireJson(type);
    return this.enrollments.activate(id, parseBody(activationRequest, body));
  }
}
