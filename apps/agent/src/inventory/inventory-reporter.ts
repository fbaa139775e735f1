import { createHash } from 'node:crypto';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InventoryReceipt, InventoryReport, NodeInventory } from '#otter/contracts';
import { collectInventory, type InventoryContext } from './collect-inventory.js';
import type { InventorySources } from './inventory-sources.js';

/** Where the inventory goes: the device API's `PUT /api/v1/devices/me/inventory`. */
export interface InventorySink {
  reportInventory(report: InventoryReport): Promise<InventoryReceipt>;
}

export type InventoryOutcome = 'sent' | 'unchanged' | 'deferred';

/**
 * Sends the node's inventory when it differs from the last one Otter accepted: collected on every daemon
 * cycle, hashed, and compared with the hash kept in `<state-dir>/inventory.sha256` (written only once Otter
 * took it, so a failed send is tried again on the next cycle, and a restarted agent does not send it again).
 */
export class InventoryReporter {
  constructor(
    private readonly stateDir: string,
    private readonly sources: InventorySources,
    private readonly log: (event: Record<string, unknown>) => void,
  ) {}

  async reportIfChanged(sink: InventorySink, context: InventoryContext): Promise<InventoryOutcome> {
    const { inventory, warnings } = await collectInventory(this.sources, context);
    const digest = inventoryDigest(inventory);
    if (digest === (await this.lastSent())) return 'unchanged';
    for (const warning of warnings) this.log({ event: 'inventory-warning', warning });
    try {
      await sink.reportInventory({ inventory, at: new Date().toISOString() });
    } catch (error) {
      this.log({
        event: 'inventory-deferred',
        error: error instanceof Error ? error.message : String(error),
      });
      return 'deferred';
    }
    const tmp = `${this.file()}.${process.pid}.tmp`;
    await writeFile(tmp, `${digest}\n`, { mode: 0o600 });
    await rename(tmp, this.file());
    this.log({ event: 'inventory-sent', sha256: digest });
    return 'sent';
  }

  private file(): string {
    return join(this.stateDir, 'inventory.sha256');
  }

  private async lastSent(): Promise<string | undefined> {
    try {
      return (await readFile(this.file(), 'utf8')).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }
}

/** sha256 of the inventory's JSON (collectInventory builds it in one fixed key order). */
export function inventoryDigest(inventory: NodeInventory): string {
  return createHash('sha256').update(JSON.stringify(inventory)).digest('hex');
}
