import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { InventoryReport } from '#otter/contracts';
import type { InventoryContext } from './collect-inventory.js';
import { InventoryReporter, type InventorySink } from './inventory-reporter.js';
import type { InventorySources } from './inventory-sources.js';

const context: InventoryContext = {
  bootEnv: 'file',
  activeSlot: 'a',
  slotVersions: { a: '1.0.0', b: null },
  agentVersion: '0.1.0',
};

/** Sources whose kernel and labels the test changes between cycles. */
function machine(): InventorySources & { kernel: string; labels: string } {
  const m = {
    kernel: '6.1.0',
    labels: 'site=north',
    kernelRelease: () => Promise.resolve(m.kernel),
    osReleaseText: () => Promise.resolve('ID=debian'),
    deviceLabelsText: () => Promise.resolve(m.labels),
    diskBytes: () => Promise.resolve(1000),
    memoryBytes: () => Promise.resolve(2000),
  };
  return m;
}

class RecordingSink implements InventorySink {
  sent: InventoryReport[] = [];
  failing = false;
  reportInventory(report: InventoryReport) {
    if (this.failing) return Promise.reject(new Error('503 unavailable'));
    this.sent.push(report);
    return Promise.resolve({ sha256: 'x', receivedAt: new Date().toISOString() });
  }
}

describe('InventoryReporter', () => {
  it('sends the first inventory, then only when it changes, across restarts of the agent', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'otter-inventory-'));
    const m = machine();
    const sink = new RecordingSink();
    const log: Array<Record<string, unknown>> = [];
    const reporter = new InventoryReporter(stateDir, m, (e) => log.push(e));

    expect(await reporter.reportIfChanged(sink, context)).toBe('sent');
    expect(await reporter.reportIfChanged(sink, context)).toBe('unchanged');
    // A restarted agent remembers what Otter already has.
    expect(await new InventoryReporter(stateDir, m, () => undefined).reportIfChanged(sink, context)).toBe(
      'unchanged',
    );
    m.kernel = '6.1.1';
    expect(await reporter.reportIfChanged(sink, context)).toBe('sent');
    m.labels = 'site=south';
    expect(await reporter.reportIfChanged(sink, context)).toBe('sent');
    expect(await reporter.reportIfChanged(sink, { ...context, activeSlot: 'b' })).toBe('sent');
    expect(
      sink.sent.map((r) => [r.inventory.kernel, r.inventory.deviceLabels.site, r.inventory.activeSlot]),
    ).toEqual([
      ['6.1.0', 'north', 'a'],
      ['6.1.1', 'north', 'a'],
      ['6.1.1', 'south', 'a'],
      ['6.1.1', 'south', 'b'],
    ]);
    expect(log.filter((e) => e.event === 'inventory-sent')).toHaveLength(4);
  });

  it('tries again on the next cycle when Otter did not take it', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'otter-inventory-'));
    const sink = new RecordingSink();
    const log: Array<Record<string, unknown>> = [];
    const reporter = new InventoryReporter(stateDir, machine(), (e) => log.push(e));
    sink.failing = true;
    expect(await reporter.reportIfChanged(sink, context)).toBe('deferred');
    expect(log).toContainEqual({ event: 'inventory-deferred', error: '503 unavailable' });
    sink.failing = false;
    expect(await reporter.reportIfChanged(sink, context)).toBe('sent');
    expect(sink.sent).toHaveLength(1);
  });
});
