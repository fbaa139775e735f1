import type { AuditListDto } from '#otter/contracts';
import type { Forwarded } from './forwarded.js';
import type { GetAuditData } from './generated/index.js';
import { OtterApiClient } from './otter-api-client.js';

/** The filters of `GET /api/v1/audit`, from the generated types (widened: the server checks them). */
export type AuditListFilter = Forwarded<NonNullable<GetAuditData['query']>>;

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
