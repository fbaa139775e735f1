import { Module } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { AuditController } from './audit.controller.js';

@Module({
  imports: [AuthModule],
  controllers: [AuditController],
})
export class AuditHttpModule {}
