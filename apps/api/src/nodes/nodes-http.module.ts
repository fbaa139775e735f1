import { Module } from '@nestjs/common';
import { AuditModule } from '#otter/audit';
import { AuthModule } from '#otter/auth';
import { DeltaBuildsModule } from '#otter/delta-builds';
import { NodesModule } from '#otter/nodes';
import { ROLLOUTS_MODULE } from '../rollouts/rollouts-http.module.js';
import { NodeDetailService } from './node-detail.service.js';
import { NodesController } from './nodes.controller.js';

/** The operators' node routes. A node's detail reads its downloads and rollouts through their libs. */
@Module({
  imports: [NodesModule, AuthModule, AuditModule, DeltaBuildsModule, ROLLOUTS_MODULE],
  controllers: [NodesController],
  providers: [NodeDetailService],
})
export class NodesHttpModule {}
