import { Controller, Get } from '@nestjs/common';
import { AuditService } from '#otter/audit';
import { RequireRole } from '#otter/auth';
import { auditQuery, type AuditListDto, type AuditQuery } from '#otter/contracts';
import { ApiRoute } from '../api-contract/api-route.js';
import { auditListDto } from '#otter/contracts';
import { ValidQuery } from '../api-contract/valid-input.js';

/** The audit log, newest first (docs/audit.md). Admin only: it names every token and source address. */
@Controller('api/v1/audit')
@RequireRole('admin')
export class AuditController {
  constructor(private readonly audit: AuditService) {}

  @ApiRoute({ summary: 'The audit log, newest first, filtered; a cursor pages on', response: auditListDto })
  @Get()
  list(@ValidQuery(auditQuery) query: AuditQuery): Promise<AuditListDto> {
    return this.audit.list(query);
  }
}
