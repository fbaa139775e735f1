import type {
  AllowEnrollmentRequest,
  NodeDto,
  NodeListDto,
  ReenrollmentDto,
  SetNodeLabelsRequest,
} from '#otter/contracts';
import { OtterApiClient } from './otter-api-client.js';

/** Fleet operations on enrolled nodes (`/api/v1/nodes`). */
export class NodesClient extends OtterApiClient {
  async listNodes(): Promise<NodeDto[]> {
    return (await this.request<NodeListDto>('GET', 'api/v1/nodes')).nodes;
  }

  approveNode(id: string): Promise<NodeDto> {
    return this.request<NodeDto>('POST', `api/v1/nodes/${encodeURIComponent(id)}/approve`);
  }

  rejectNode(id: string): Promise<NodeDto> {
    return this.request<NodeDto>('POST', `api/v1/nodes/${encodeURIComponent(id)}/reject`);
  }

  revokeNode(id: string): Promise<NodeDto> {
    return this.request<NodeDto>('POST', `api/v1/nodes/${encodeURIComponent(id)}/revoke`);
  }

  /** Accepts the node's current firmware/boot PCR values as its new pinned baseline. */
  repinNode(id: string): Promise<NodeDto> {
    return this.request<NodeDto>('POST', `api/v1/nodes/${encodeURIComponent(id)}/repin`);
  }

  /** Admin: lets the node's own TPM enroll once more into it (a re-imaged board), within a window. */
  reenrollNode(id: string): Promise<ReenrollmentDto> {
    return this.request<ReenrollmentDto>('POST', `api/v1/nodes/${encodeURIComponent(id)}/re-enroll`);
  }

  /** Replaces the node's whole label set (what rollout selectors match). */
  setLabels(id: string, labels: Record<string, string>): Promise<NodeDto> {
    const body: SetNodeLabelsRequest = { labels };
    return this.request<NodeDto>('PUT', `api/v1/nodes/${encodeURIComponent(id)}/labels`, {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });
  }

  allowEnrollment(entry: AllowEnrollmentRequest): Promise<void> {
    return this.request<void>('POST', 'api/v1/enrollment-allowlist', {
      body: JSON.stringify(entry),
      headers: { 'content-type': 'application/json' },
    });
  }
}
