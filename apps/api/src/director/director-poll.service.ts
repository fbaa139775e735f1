import { Injectable } from '@nestjs/common';
import { DirectorRepository } from '#otter/director';
import type { DpopRequest } from '#otter/identity';
import { DeviceIdentityService } from '#otter/nodes';
import { KeyedBatch } from './keyed-batch.js';
import { requireOwnNode } from './own-node.js';

/**
 * A node's poll of its director `timestamp.json`, the request every agent makes on every check for work.
 *
 * The answer of a node's last poll is served again, with no database or Redis read, for up to a second
 * after the database last confirmed it (the node active and not revoked, its assignment, timestamp and root
 * unchanged): the same bound as the image repository's timestamp.json. Past that, concurrent polls confirm
 * their held answers together, in one query and one Redis call per batch; the same batch tells which nodes
 * may poll at all. A node allowed but with no current answer goes to DirectorRepository.metadata(), which
 * signs anew when needed; a refused node takes the full path (allowedNode), which says why. A node revoked
 * through this process is refused at once; through another replica, within a second; a token bound to a device
 * key the node no longer holds (re-enrolled, or renewed with a new key) is likewise refused within a second.
 */
@Injectable()
export class DirectorPollService {
  private readonly confirmations = new KeyedBatch<string, Standing>((nodeIds) => this.confirm(nodeIds));

  constructor(
    private readonly identity: DeviceIdentityService,
    private readonly director: DirectorRepository,
  ) {}

  async timestamp(accessToken: string, dpop: DpopRequest, pathNodeId: string): Promise<string> {
    // The token and its DPoP proof, checked on every poll; only the node's standing may be held for a second.
    const claims = await this.identity.tokenNode(accessToken, dpop);
    const { nodeId } = claims;
    if (nodeId === pathNodeId && !this.identity.revokedHere(nodeId)) {
      const held = this.director.heldTimestamp(nodeId);
      if (held !== undefined) return held;
      const standing = await this.confirmations.get(nodeId);
      // The batch just read what allowedNode() would (active, not revoked, the device key the token is bound to).
      if (standing !== undefined && standing.jkt === claims.jkt && !this.identity.revokedHere(nodeId)) {
        if (standing.confirmed) {
          const confirmed = this.director.heldTimestamp(nodeId);
          if (confirmed !== undefined) return confirmed;
        }
        return (await this.director.metadata(nodeId, 'timestamp.json')).body;
      }
    }
    const node = await this.identity.allowedNode(claims);
    requireOwnNode(node.id, pathNodeId);
    return (await this.director.metadata(node.id, 'timestamp.json')).body;
  }

  /** Each node allowed to poll, with its device key and whether its held answer is still current. */
  private async confirm(nodeIds: string[]): Promise<Map<string, Standing>> {
    const allowed = await this.identity.allowedAmong(nodeIds);
    for (const id of nodeIds) if (!allowed.has(id)) this.director.forgetHeld(id);
    const confirmed = await this.director.confirmHeld([...allowed.keys()]);
    return new Map([...allowed].map(([id, jkt]) => [id, { jkt, confirmed: confirmed.has(id) }]));
  }
}

/**
 * A node allowed to poll: the thumbprint of its current device key (a token bound to another key is refused),
 * and whether its held answer is still current (serve it) or must be read or signed.
 */
interface Standing {
  jkt: string;
  confirmed: boolean;
}
