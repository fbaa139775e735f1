import { DirectorError } from '#otter/director';

/** A node reads only its own director metadata: the node in the path must be the one the token speaks for. */
export function requireOwnNode(tokenNodeId: string, pathNodeId: string): void {
  if (tokenNodeId !== pathNodeId) {
    throw new DirectorError(
      'DIRECTOR_NODE_MISMATCH',
      'a node may read only its own director metadata: this token speaks for another node',
    );
  }
}
