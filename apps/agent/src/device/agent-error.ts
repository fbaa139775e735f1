/** A failure on the agent's own side (no enrollment yet, no identity yet, a bad argument), with a stable code. */
export class AgentError extends Error {
  constructor(
    readonly code: AgentErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

export type AgentErrorCode = 'NOT_ENROLLED' | 'NO_IDENTITY' | 'INVALID_ARGUMENT' | 'INSECURE_SERVER';
