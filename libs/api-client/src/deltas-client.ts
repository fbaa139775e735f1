import type { DeltaBuildDto, DeltaBuildListDto, DeltaRequest, SavingsDto } from '#otter/contracts';
import { OtterApiClient } from './otter-api-client.js';

/** Delta builds and bytes saved (`/api/v1/deltas`, `/api/v1/savings`). */
export class DeltasClient extends OtterApiClient {
  async listDeltas(hardware?: string): Promise<DeltaBuildDto[]> {
    const query = hardware === undefined ? '' : `?${new URLSearchParams({ hardware })}`;
    return (await this.request<DeltaBuildListDto>('GET', `api/v1/deltas${query}`)).deltas;
  }

  /** Queues a build of the pair, or returns the existing build of it. */
  requestDelta(input: DeltaRequest): Promise<DeltaBuildDto> {
    return this.request<DeltaBuildDto>('POST', 'api/v1/deltas', {
      body: JSON.stringify(input),
      headers: { 'content-type': 'application/json' },
    });
  }

  savings(hardware?: string): Promise<SavingsDto> {
    const query = hardware === undefined ? '' : `?${new URLSearchParams({ hardware })}`;
    return this.request<SavingsDto>('GET', `api/v1/savings${query}`);
  }
}
