import { Controller, Get, Param, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { DirectorError, DirectorRepository } from '#otter/director';
import type { NodeRecord } from '#otter/nodes';
import { CurrentNode, DeviceAuthGuard } from '../devices/device-auth.guard.js';

// Per-node metadata is private to the node. Versioned files never change; timestamp.json changes in place.
const VERSIONED = 'private, max-age=31536000, immutable';
const TIMESTAMP = 'private, no-cache';

/**
 * The director repository, per node, in the layout a stock tuf-js Updater expects (no delegations).
 * `timestamp.json`, asked for on every poll, is answered first by DirectorTimestampRoute (a plain Fastify
 * route: a static path segment wins over `:file`); this controller serves the root and versioned files.
 */
@Controller('tuf/director')
export class DirectorMetadataController {
  constructor(private readonly director: DirectorRepository) {}

  @Get(':nodeId/metadata/:file')
  @UseGuards(DeviceAuthGuard)
  async metadata(
    @CurrentNode() node: NodeRecord,
    @Param('nodeId') nodeId: string,
    @Param('file') file: string,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    if (nodeId !== node.id) {
      throw new DirectorError(
        'DIRECTOR_NODE_MISMATCH',
        'a node may read only its own director metadata: this token speaks for another node',
      );
    }
    const found = await this.director.metadata(node.id, file);
    await reply
      .header('content-type', 'application/json')
      .header('cache-control', found.version === undefined ? TIMESTAMP : VERSIONED)
      .send(found.body);
  }
}
