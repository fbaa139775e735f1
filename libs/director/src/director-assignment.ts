import semver from 'semver';
import { HARDWARE_ID_PATTERN } from '#otter/contracts';
import { DirectorError } from './director.errors.js';

/** What the rollout scheduler tells the director a node should run. */
export interface DirectorAssignmentInput {
  nodeId: string;
  hardwareId: string;
  releaseId: string;
  /** The image repository's target path: `images/{hardwareId}/{version}`. */
  targetPath: string;
  /** The release version (semver); the agent refuses one lower than what it last installed. */
  version: string;
  /** Lowercase hex, as the image repository signs it. */
  sha256: string;
  length: number;
  /** Becomes the target's `correlationId`, so reports can be tied to the rollout. */
  rolloutId: string | null;
}

export interface AssignedImage {
  releaseId: string;
  targetPath: string;
  version: string;
  sha256: string;
  length: number;
}

export interface DirectorAssignment {
  nodeId: string;
  hardwareId: string;
  /** The one image the director names, or null: the node is told there is nothing to install. */
  image: AssignedImage | null;
  rolloutId: string | null;
  /** Grows with every change; metadata is regenerated lazily when it differs from metadataGeneration. */
  generation: number;
  /** The generation the node's current signed metadata was made from (null: none yet, or invalidated). */
  metadataGeneration: number | null;
  updatedAt: string;
}

const SHA256 = /^[0-9a-f]{64}$/;
const NODE_ID = /^[A-Za-z0-9-]{1,64}$/;

/** Refuses an assignment the director could not sign as a valid image target for that node. */
export function assertValidAssignment(input: DirectorAssignmentInput): void {
  const problems: string[] = [];
  if (!NODE_ID.test(input.nodeId)) problems.push('nodeId must be a node id');
  if (!HARDWARE_ID_PATTERN.test(input.hardwareId)) problems.push('hardwareId is not a valid hardware id');
  if (typeof input.releaseId !== 'string' || input.releaseId.length === 0 || input.releaseId.length > 200)
    problems.push('releaseId must be 1-200 characters');
  if (semver.valid(input.version) !== input.version) problems.push('version must be a semantic version');
  if (input.targetPath !== `images/${input.hardwareId}/${input.version}`)
    problems.push('targetPath must be images/{hardwareId}/{version}');
  if (!SHA256.test(input.sha256)) problems.push('sha256 must be 64 lowercase hex characters');
  if (!Number.isSafeInteger(input.length) || input.length < 0)
    problems.push('length must be a non-negative integer');
  if (input.rolloutId !== null && (input.rolloutId.length === 0 || input.rolloutId.length > 200))
    problems.push('rolloutId must be null or 1-200 characters');
  if (problems.length > 0) {
    throw new DirectorError('DIRECTOR_ASSIGNMENT_INVALID', `assignment refused: ${problems.join('; ')}`, {
      problems,
    });
  }
}
