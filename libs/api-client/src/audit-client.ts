import type { AuditListDto } from '#otter/contracts';
import { OtterApiClient } from './otter-api-client.js';

/** The filters of `GET /api/v1/audit`, as query strings (the server checks them). */
export interface AuditListFilter {
  actor?: string;
  action?: string;
  outcome?: string;
  target?: string;
  from?: string;
  to?: string;
  cursor?: string;
  limit?: number;
}

/** The audit log (`/api/v1/audit`, admin). */
export class AuditClient extends OtterApiClient {
  listAudit(filter: AuditListFilter = {}): Promise<AuditListDto> {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(filter))
      if (value !== undefined) params.set(key, String(value));
    const query = params.size > 0 ? `?${params}` : '';
    return this.request<AuditListDto>('GET', `api/v1/audit${query}`);
  }
}
