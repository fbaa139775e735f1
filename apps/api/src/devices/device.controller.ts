import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Param,
  ParseUUIDPipe,
  Post,
  Put,
  UseGuards,
} from '@nestjs/common';
import {
  inventoryReportSchema,
  type AccessTokenDto,
  type AttestationChallenge,
  type IdentityResult,
  type InventoryReceipt,
  type NodeDto,
  type VerdictDto,
} from '#otter/contracts';
import { OtterError } from '#otter/errors';
import {
  AttestationService,
  DeviceIdentityService,
  NodeService,
  NodeStoryService,
  type NodeRecord,
} from '#otter/nodes';
import { parseBody, requireJson } from '../common/request-body.js';
import { CurrentNode, DeviceAuthGuard } from './device-auth.guard.js';
import { RateLimited } from './device-rate-limits.js';
import {
  attestationRequest,
  challengeRequest,
  deviceReport,
  identityRequest,
  tokenRequest,
} from './device-requests.js';

@Controller('api/v1/devices')
export class DeviceController {
  constructor(
    private readonly identity: DeviceIdentityService,
    private readonly attestation: AttestationService,
    private readonly nodes: NodeService,
    private readonly stories: NodeStoryService,
  ) {}

  /** Self-authenticating: the certify must come from this node's trusted AK. */
  @Post(':nodeId/identity')
  @HttpCode(201)
  @RateLimited('deviceLogin')
  issueIdentity(
    @Param('nodeId', new ParseUUIDPipe()) nodeId: string,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<IdentityResult> {
    requireJson(type);
    return this.identity.issueIdentity(nodeId, parseBody(identityRequest, body));
  }

  @Post('token')
  @HttpCode(200)
  @RateLimited('deviceLogin')
  token(@Headers('content-type') type: string | undefined, @Body() body: unknown): Promise<AccessTokenDto> {
    requireJson(type);
    return this.identity.exchangeAssertion(parseBody(tokenRequest, body).assertion);
  }

  @Post('me/attestation/challenge')
  @HttpCode(201)
  @UseGuards(DeviceAuthGuard)
  challenge(@CurrentNode() node: NodeRecord, @Body() body: unknown): Promise<AttestationChallenge> {
    return this.attestation.challenge(node, parseBody(challengeRequest, body ?? {}).runningVersion);
  }

  @Post('me/attestation')
  @HttpCode(200)
  @UseGuards(DeviceAuthGuard)
  attest(
    @CurrentNode() node: NodeRecord,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<VerdictDto> {
    requireJson(type);
    return this.attestation.attest(node, parseBody(attestationRequest, body));
  }

  @Post('me/reports')
  @HttpCode(202)
  @UseGuards(DeviceAuthGuard)
  async report(
    @CurrentNode() node: NodeRecord,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<void> {
    requireJson(type);
    await this.attestation.report(node, parseBody(deviceReport, body));
  }

  /** The node's inventory (kernel, OS, slots, sizes, its own labels): sent at start and when it changes. */
  @Put('me/inventory')
  @HttpCode(200)
  @UseGuards(DeviceAuthGuard)
  inventory(
    @CurrentNode() node: NodeRecord,
    @Headers('content-type') type: string | undefined,
    @Body() body: unknown,
  ): Promise<InventoryReceipt> {
    requireJson(type);
    return this.stories.reportInventory(node, parseBody(inventoryReportSchema, body));
  }

  /** A node reads its own record only. */
  @Get(':nodeId')
  @UseGuards(DeviceAuthGuard)
  async own(
    @CurrentNode() node: NodeRecord,
    @Param('nodeId', new ParseUUIDPipe()) nodeId: string,
  ): Promise<NodeDto> {
    if (node.id !== nodeId) throw new OtterError('FORBIDDEN', 'a node may read only its own record');
    return this.nodes.get(nodeId);
  }
}
