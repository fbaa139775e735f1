import { Inject, Injectable } from '@nestjs/common';
import type { NodeInventory } from '#otter/contracts';
import { DB, type Db } from '#otter/db';

export interface StoredInventory {
  value: NodeInventory;
  sha256: string;
  reportedAt: string;
  receivedAt: string;
}

/** The only place that reads or writes node_inventory: each node's latest inventory, one row a node. */
@Injectable()
export class NodeInventoryRepository {
  constructor(@Inject(DB) private readonly db: Db) {}

  /** Replaces the node's inventory (an older report than the stored one changes nothing). */
  async put(nodeId: string, inventory: StoredInventory): Promise<void> {
    const row = {
      inventory: JSON.stringify(inventory.value),
      sha256: inventory.sha256,
      reported_at: inventory.reportedAt,
      received_at: inventory.receivedAt,
    };
    await this.db
      .insertInto('node_inventory')
      .values({ node_id: nodeId, ...row })
      .onConflict((oc) =>
        oc.column('node_id').doUpdateSet(row).where('node_inventory.reported_at', '<=', inventory.reportedAt),
      )
      .execute();
  }

  async get(nodeId: string): Promise<StoredInventory | undefined> {
    const row = await this.db
      .selectFrom('node_inventory')
      .selectAll()
      .where('node_id', '=', nodeId)
      .executeTakeFirst();
    return (
      row && {
        value: JSON.parse(row.inventory) as NodeInventory,
        sha256: row.sha256,
        reportedAt: row.reported_at,
        receivedAt: row.received_at,
      }
    );
  }
}
