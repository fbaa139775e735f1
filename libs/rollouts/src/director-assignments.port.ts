import type { Db } from '#otter/db';

export interface AssignmentInput {
  nodeId: string;
  hardwareId: string;
  releaseId: string;
  targetPath: string;
  version: string;
  sha256: string;
  length: number;
  rolloutId: string | null;
}

/**
 * What rollouts need from the director: write or clear the image a node should run, inside the caller's
 * transaction so an admission and its assignment commit together. libs/director provides it.
 */
export interface DirectorAssignments {
  assign(input: AssignmentInput, db?: Db): Promise<unknown>;
  assignMany(inputs: readonly AssignmentInput[], db?: Db): Promise<unknown>;
  clear(nodeId: string, db?: Db): Promise<unknown>;
}

export const DIRECTOR_ASSIGNMENTS = Symbol('DIRECTOR_ASSIGNMENTS');
