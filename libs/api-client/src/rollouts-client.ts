import type {
  CreateRolloutRequest,
  RolloutDto,
  RolloutListDto,
  RolloutNodeDto,
  RolloutNodeListDto,
} from '#otter/contracts';
import { OtterApiClient } from './otter-api-client.js';

const JSON_BODY = { 'content-type': 'application/json' };

/** Rollouts (`/api/v1/rollouts`): create a draft, start, pause, resume, abort, exclude a node, look. */
export class RolloutsClient extends OtterApiClient {
  createRollout(input: CreateRolloutRequest): Promise<RolloutDto> {
    return this.request<RolloutDto>('POST', 'api/v1/rollouts', {
      body: JSON.stringify(input),
      headers: JSON_BODY,
    });
  }

  async listRollouts(): Promise<RolloutDto[]> {
    return (await this.request<RolloutListDto>('GET', 'api/v1/rollouts')).rollouts;
  }

  getRollout(id: string): Promise<RolloutDto> {
    return this.request<RolloutDto>('GET', rolloutPath(id));
  }

  async rolloutNodes(id: string): Promise<RolloutNodeDto[]> {
    return (await this.request<RolloutNodeListDto>('GET', `${rolloutPath(id)}/nodes`)).nodes;
  }

  startRollout(id: string): Promise<RolloutDto> {
    return this.request<RolloutDto>('POST', `${rolloutPath(id)}/start`);
  }

  pauseRollout(id: string, reason: string): Promise<RolloutDto> {
    return this.request<RolloutDto>('POST', `${rolloutPath(id)}/pause`, withReason(reason));
  }

  resumeRollout(id: string): Promise<RolloutDto> {
    return this.request<RolloutDto>('POST', `${rolloutPath(id)}/resume`);
  }

  abortRollout(id: string, reason: string): Promise<RolloutDto> {
    return this.request<RolloutDto>('POST', `${rolloutPath(id)}/abort`, withReason(reason));
  }

  /** Takes one node out of the rollout and out of its wave's numbers. */
  excludeNode(id: string, nodeId: string, reason: string): Promise<RolloutNodeDto> {
    return this.request<RolloutNodeDto>(
      'POST',
      `${rolloutPath(id)}/nodes/${encodeURIComponent(nodeId)}/exclude`,
      withReason(reason),
    );
  }
}

function rolloutPath(id: string): string {
  return `api/v1/rollouts/${encodeURIComponent(id)}`;
}

function withReason(reason: string): { body: string; headers: Record<string, string> } {
  return { body: JSON.stringify({ reason }), headers: JSON_BODY };
}
