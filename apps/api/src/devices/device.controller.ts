import { Controller, Get, HttpCode, Post, Put, UseGuards } from '@nestjs/common';
import {
  attestationRequestSchema,
  challengeRequestSchema,
  deviceReportSchema,
  identityRequestSchema,
  inventoryReportSchema,
  tokenRequestSchema,
  uuidParamSchema,
  type AccessTokenDto,
  type AttestationChallenge,
  type AttestationRequest,
  type DeviceReport,
  type IdentityRequest,
  type IdentityResult,
  type InventoryReceipt,
  type InventoryReport,
  type NodeDto,
  type VerdictDto,
} from '#otter/contracts';
import { OtterError, type ErrorCode } from '#otter/errors';
import {
  AttestationService,
  DeviceIdentityService,
  NodeService,
  NodeStoryService,
  type NodeRecord,
} from '#otter/nodes';
import { ApiRoute } from '../api-contract/api-route.js';
import {
  accessTokenDtoSchema,
  attestationChallengeSchema,
  identityResultSchema,
  inventoryReceiptSchema,
  nodeDtoSchema,
  verdictDtoSchema,
} from '#otter/contracts';
import { JsonBody, ValidParam } from '../api-contract/valid-input.js';
import { CurrentNode, DeviceAuthGuard } from './device-auth.guard.js';
import { RateLimited } from './device-rate-limits.js';
import { QUOTE_ERRORS } from './quote-errors.js';

/** What TPM evidence can be refused for (libs/attestation). */
const IDENTITY_ERRORS: ErrorCode[] = [
  'TPM_PUBLIC_MALFORMED',
  'TPM_PUBLIC_UNSUPPORTED',
  'TPM_ATTEST_MALFORMED',
  'TPM_SIGNATURE_MALFORMED',
  'TPM_SIGNATURE_UNSUPPORTED',
  'CERTIFY_MALFORMED',
  'CERTIFY_WRONG_TYPE',
  'CERTIFY_NONCE_MISMATCH',
  'CERTIFY_SIGNATURE_INVALID',
  'CERTIFY_NAME_MISMATCH',
  'DEVICE_KEY_REJECTED',
  'TOKEN_INVALID',
  'UNAUTHENTICATED',
  'NODE_NOT_FOUND',
  'NODE_NOT_ADMITTED',
];
const ATTESTATION_ERRORS: ErrorCode[] = [
  'TPM_PUBLIC_MALFORMED',
  'TPM_PUBLIC_UNSUPPORTED',
  'TPM_ATTEST_MALFORMED',
  'TPM_SIGNATURE_MALFORMED',
  'TPM_SIGNATURE_UNSUPPORTED',
  ...QUOTE_ERRORS,
  'NONCE_INVALID',
  'ATTESTATION_FAILED',
  'NODE_NOT_ADMITTED',
  'RELEASE_NOT_FOUND',
];

@Controller('api/v1/devices')
export class DeviceController {
  constructor(
    private readonly identity: DeviceIdentityService,
    private readonly attestation: AttestationService,
    private readonly nodes: NodeService,
    private readonly stories: NodeStoryService,
  ) {}

  /** Self-authenticating: the certify must come from this node's trusted AK. */
  @ApiRoute({
    summary: 'Issue a device certificate for an AK-certified device key',
    response: identityResultSchema,
    errors: IDENTITY_ERRORS,
  })
  @Post(':nodeId/identity')
  @HttpCode(201)
  @RateLimited('deviceLogin')
  issueIdentity(
    @ValidParam('nodeId', uuidParamSchema) nodeId: string,
    @JsonBody(identityRequestSchema) body: IdentityRequest,
  ): Promise<IdentityResult> {
    return this.identity.issueIdentity(nodeId, body);
  }

  @ApiRoute({
    summary: 'Exchange a device-key assertion for an access token',
    response: accessTokenDtoSchema,
    errors: [
      'TOKEN_INVALID',
      'UNAUTHENTICATED',
      'NODE_NOT_FOUND',
      'NODE_NOT_ADMITTED',
      'DEVICE_KEY_REJECTED',
    ],
  })
  @Post('token')
  @HttpCode(200)
  @RateLimited('deviceLogin')
  token(@JsonBody(tokenRequestSchema) body: { assertion: string }): Promise<AccessTokenDto> {
    return this.identity.exchangeAssertion(body.assertion);
  }

  @ApiRoute({
    summary: 'A nonce to quote for the next attestation',
    response: attestationChallengeSchema,
    errors: ['NODE_NOT_ADMITTED', 'RELEASE_NOT_FOUND'],
  })
  @Post('me/attestation/challenge')
  @HttpCode(201)
  @UseGuards(DeviceAuthGuard)
  challenge(
    @CurrentNode() node: NodeRecord,
    @JsonBody(challengeRequestSchema, { optional: true }) body: { runningVersion?: string },
  ): Promise<AttestationChallenge> {
    return this.attestation.challenge(node, body.runningVersion);
  }

  @ApiRoute({
    summary: 'Attest: a TPM quote over the challenge nonce',
    response: verdictDtoSchema,
    errors: ATTESTATION_ERRORS,
  })
  @Post('me/attestation')
  @HttpCode(200)
  @UseGuards(DeviceAuthGuard)
  attest(
    @CurrentNode() node: NodeRecord,
    @JsonBody(attestationRequestSchema) body: AttestationRequest,
  ): Promise<VerdictDto> {
    return this.attestation.attest(node, body);
  }

  @ApiRoute({ summary: 'A health or integrity report from the node', errors: ['NODE_NOT_ADMITTED'] })
  @Post('me/reports')
  @HttpCode(202)
  @UseGuards(DeviceAuthGuard)
  async report(
    @CurrentNode() node: NodeRecord,
    @JsonBody(deviceReportSchema) body: DeviceReport,
  ): Promise<void> {
    await this.attestation.report(node, body);
  }

  /** The node's inventory (kernel, OS, slots, sizes, its own labels): sent at start and when it changes. */
  @ApiRoute({
    summary: "The node's inventory, sent at start and when it changes",
    response: inventoryReceiptSchema,
    errors: ['NODE_NOT_ADMITTED'],
  })
  @Put('me/inventory')
  @HttpCode(200)
  @UseGuards(DeviceAuthGuard)
  inventory(
    @CurrentNode() node: NodeRecord,
    @JsonBody(inventoryReportSchema) body: InventoryReport,
  ): Promise<InventoryReceipt> {
    return this.stories.reportInventory(node, body);
  }

  /** A node reads its own record only. */
  @ApiRoute({
    summary: 'A node reads its own record',
    response: nodeDtoSchema,
    errors: ['FORBIDDEN', 'NODE_NOT_FOUND'],
  })
  @Get(':nodeId')
  @UseGuards(DeviceAuthGuard)
  async own(
    @CurrentNode() node: NodeRecord,
    @ValidParam('nodeId', uuidParamSchema) nodeId: string,
  ): Promise<NodeDto> {
    if (node.id !== nodeId) throw new OtterError('FORBIDDEN', 'a node may read only its own record');
    return this.nodes.get(nodeId);
  }
}
