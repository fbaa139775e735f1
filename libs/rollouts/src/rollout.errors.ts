import { OtterError } from '#otter/errors';

export type RolloutErrorCode =
  | 'ROLLOUT_NOT_FOUND'
  | 'ROLLOUT_INVALID'
  | 'ROLLOUT_CONFLICT'
  | 'ROLLOUT_STATE_INVALID'
  | 'ROLLOUT_NODE_NOT_FOUND'
  | 'ROLLOUT_RELEASE_UNMEASURED';

export class RolloutError extends OtterError {
  constructor(code: RolloutErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, message, details);
  }
}
