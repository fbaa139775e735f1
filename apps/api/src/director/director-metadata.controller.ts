import { Controller, Get, Param, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { DirectorRepository } from '#otter/director';
import type { NodeRecord } from '#otter/nodes';
import { ApiRoute } from '../api-contract/api-route.js';
import { tufMetadataSchema } from '../api-contract/tuf-metadata.js';
import { CurrentNode, DeviceAuthGuard } from '../devices/device-auth.guard.js';
import { requireOwnNode } from './own-node.js';

// Per-node metadata is private to the node; versioned files never change.
const VERSIONED = 'private, max-age=31536000, immutable';

/**
 * The director repository, per node, in the layout a stock tuf-js Updater expects (no delegations).
 * `timestamp.json`, asked for on every poll, is answered first by DirectorTimestampRoute (a plain Fastify
 * route: a static path segment wins over `:file`); this controller serves the root and versioned files.
 */
@Controller('tuf/director')
export class DirectorMetadataController {
  constructor(private readonly director: DirectorRepository) {}

  @ApiRoute({
    summary: "A node's director metadata file (TUF): root or a versioned file",
    response: { schema: tufMetadataSchema },
    errors: [
      'DIRECTOR_NOT_INITIALIZED',
      'DIRECTOR_NODE_MISMATCH',
      'DIRECTOR_NODE_NOT_FOUND',
      'DIRECTOR_METADATA_NOT_FOUND',
      'NODE_NOT_ADMITTED',
    ],
  })
  @Get(':nodeId/metadata/:file')
  @UseGuards(DeviceAuthGuard)
  async metadata(
    @CurrentNode() node: NodeRecord,
    @Param('nodeId') nodeId: string,
    @Param('file') file: string,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    requireOwnNode(node.id, nodeId);
    const found = await this.director.metadata(node.id, file);
    await reply
      .header('content-type', 'application/json')
      .header('cache-control', VERSIONED)
      .send(found.body);
  }
}
