import { Controller, Get, Query } from '@nestjs/common';
import { AuditService } from '#otter/audit';
import { RequireRole } from '#otter/auth';
import { auditQuery, type AuditListDto } from '#otter/contracts';
import { parseQuery } from '../common/request-body.js';

/** The audit log, newest first (docs/audit.md). Admin only: it names every token and source address. */
@Controller('api/v1/audit')
@RequireRole('admin')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @Get()
  list(@Query() query: unknown): Promise<AuditListDto> {
    return this.audit.list(parseQuery(auditQuery, query));
  }
}
