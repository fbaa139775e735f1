import { Injectable } from '@nestjs/common';
import { DirectorError, DirectorRepository } from '#otter/director';
import { DeviceIdentityService } from '#otter/nodes';
import { KeyedBatch } from './keyed-batch.js';

/**
 * A node's poll of its director `timestamp.json`, the request every agent makes on every check for work.
 *
 * The answer of a node's last poll is served again, with no database or Redis read, for up to a second
 * after the database last confirmed it (the node active and not revoked, its assignment, timestamp and root
 * unchanged): the same bound as the image repository's timestamp.json. Past that, concurrent polls confirm
 * their held answers together, in one query and one Redis call per batch. Anything that changed, and every
 * refusal, takes the full path: authenticate the node, then DirectorRepository.metadata(), which signs anew
 * when needed. A node revoked through this process is refused at once; through another replica, within a
 * second.
 */
@Injectable()
export class DirectorPollService {
  private readonly confirmations = new KeyedBatch<string, true>((nodeIds) => this.confirm(nodeIds));

  constructor(
    private readonly identity: DeviceIdentityService,
    private readonly director: DirectorRepository,
  ) {}

  async timestamp(accessToken: string, pathNodeId: string): Promise<string> {
    const nodeId = await this.identity.tokenNode(accessToken);
    if (nodeId === pathNodeId && !this.identity.revokedHere(nodeId)) {
      const held = this.director.heldTimestamp(nodeId);
      if (held !== undefined) return held;
      if (await this.confirmations.get(nodeId)) {
        const confirmed = this.director.heldTimestamp(nodeId);
        if (confirmed !== undefined) return confirmed;
      }
    }
    const node = await this.identity.authenticate(accessToken);
    if (node.id !== pathNodeId) {
      throw new DirectorError(
        'DIRECTOR_NODE_MISMATCH',
        'a node may read only its own director metadata: this token speaks for another node',
      );
    }
    return (await this.director.metadata(node.id, 'timestamp.json')).body;
  }

  private async confirm(nodeIds: string[]): Promise<Map<string, true>> {
    const allowed = await this.identity.allowedAmong(nodeIds);
    for (const id of nodeIds) if (!allowed.has(id)) this.director.forgetHeld(id);
    const confirmed = await this.director.confirmHeld([...allowed]);
    return new Map([...confirmed].map((id) => [id, true]));
  }
}
