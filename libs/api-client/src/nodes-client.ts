import type {
  AllowEnrollmentRequest,
  NodeDetailDto,
  NodeDto,
  NodeListDto,
  ReenrollmentDto,
  SetNodeLabelsRequest,
} from '#otter/contracts';

/**
 * GET /api/v1/nodes query parameters as the API names them (`label` repeats), from the generated types. The
 * enumerated ones are widened to any string: they carry what the operator typed, and the server says what is
 * wrong with it.
 */
export type NodeListParams = Forwarded<NonNullable<GetNodesData['query']>>;
import type { GetNodesData } from './generated/index.js';
import type { Forwarded } from './forwarded.js';
import { OtterApiClient } from './otter-api-client.js';

/** Fleet operations on enrolled nodes (`/api/v1/nodes`). */
export class NodesClient extends OtterApiClient {
  /** Every node matching `params`, following the pages to the end. */
  async listNodes(params: Omit<NodeListParams, 'cursor'> = {}): Promise<NodeDto[]> {
    const nodes: NodeDto[] = [];
    let cursor: string | undefined;
    do {
      const page = await this.listNodePage({ ...params, cursor });
      nodes.push(...page.nodes);
      cursor = page.nextCursor ?? undefined;
    } while (cursor);
    return nodes;
  }

  /** One page of nodes; its `nextCursor` (as `cursor`) fetches the next. */
  listNodePage(params: NodeListParams = {}): Promise<NodeListDto> {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value === undefined) continue;
      for (const v of Array.isArray(value) ? value : [value]) query.append(key, String(v));
    }
    const text = query.toString();
    return this.request<NodeListDto>('GET', `api/v1/nodes${text ? `?${text}` : ''}`);
  }

  /** One node's whole story: identity, inventory, attestation and update history, rollouts. */
  nodeDetail(id: string): Promise<NodeDetailDto> {
    return this.request<NodeDetailDto>('GET', `api/v1/nodes/${encodeURIComponent(id)}`);
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
