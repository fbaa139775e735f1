import { describe, expect, it } from 'vitest';
import { nodeInventorySchema } from '#otter/contracts';
import {
  collectInventory,
  parseDeviceLabels,
  parseOsRelease,
  type InventoryContext,
} from './collect-inventory.js';
import type { InventorySources } from './inventory-sources.js';

const OS_RELEASE = `PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
# a comment
ID=debian
`;

function sources(overrides: Partial<Record<keyof InventorySources, unknown>> = {}): InventorySources {
  const answer = (key: keyof InventorySources, value: unknown) => () =>
    Promise.resolve((key in overrides ? overrides[key] : value) as never);
  return {
    kernelRelease: answer('kernelRelease', '6.6.31-otter'),
    osReleaseText: answer('osReleaseText', OS_RELEASE),
    deviceLabelsText: answer('deviceLabelsText', 'site=north\n# rack below\nrack = r7 / shelf 3\n'),
    diskBytes: answer('diskBytes', 32 * 1024 ** 3),
    memoryBytes: answer('memoryBytes', 4 * 1024 ** 3),
  };
}

const context: InventoryContext = {
  bootEnv: 'uboot',
  activeSlot: 'b',
  slotVersions: { a: '1.0.0', b: '1.1.0' },
  agentVersion: '0.1.0',
};

describe('collectInventory', () => {
  it('reads the machine through its sources and the agent from its context', async () => {
    const { inventory, warnings } = await collectInventory(sources(), context);
    expect(inventory).toEqual({
      kernel: '6.6.31-otter',
      os: { prettyName: 'Debian GNU/Linux 13 (trixie)', id: 'debian', versionId: '13' },
      bootLoader: 'u-boot',
      bootEnv: 'uboot',
      activeSlot: 'b',
      slots: { a: { version: '1.0.0' }, b: { version: '1.1.0' } },
      diskBytes: 32 * 1024 ** 3,
      memoryBytes: 4 * 1024 ** 3,
      agentVersion: '0.1.0',
      deviceLabels: { site: 'north', rack: 'r7 / shelf 3' },
    });
    expect(warnings).toEqual([]);
    expect(nodeInventorySchema.safeParse(inventory).success).toBe(true);
  });

  it('says null for what it cannot read, and the result is still one Otter accepts', async () => {
    const { inventory } = await collectInventory(
      sources({
        kernelRelease: null,
        osReleaseText: null,
        deviceLabelsText: null,
        diskBytes: null,
        memoryBytes: NaN,
      }),
      { ...context, bootEnv: 'file', activeSlot: null, slotVersions: { a: null, b: null } },
    );
    expect(inventory).toMatchObject({
      kernel: null,
      os: { prettyName: null, id: null, versionId: null },
      bootLoader: 'simulated',
      diskBytes: null,
      memoryBytes: null,
      deviceLabels: {},
    });
    expect(nodeInventorySchema.safeParse(inventory).success).toBe(true);
  });

  it('fits hostile machine text into what Otter accepts instead of sending what it would refuse for ever', async () => {
    const { inventory, warnings } = await collectInventory(
      sources({
        kernelRelease: `6.6\u0000${'x'.repeat(1000)}`,
        osReleaseText: `PRETTY_NAME="${'p'.repeat(500)}"\nID=${'i'.repeat(100)}`,
        deviceLabelsText: [
          'bad key=1',
          'novalue',
          `long=${'v'.repeat(300)}`,
          ...Array.from({ length: 40 }, (_, i) => `k${i}=v`),
        ].join('\n'),
      }),
      context,
    );
    expect(inventory.kernel).not.toContain('\u0000');
    expect(nodeInventorySchema.safeParse(inventory).success).toBe(true);
    expect(Object.keys(inventory.deviceLabels)).toHaveLength(32);
    expect(inventory.deviceLabels.long).toHaveLength(256);
    expect(warnings.join('\n')).toMatch(
      /line 1: .*left out[\s\S]*line 2: .*left out[\s\S]*line 3: value cut/,
    );
    expect(warnings.some((w) => w.includes('more than 32 labels'))).toBe(true);
  });
});

describe('parseOsRelease', () => {
  it('unquotes double- and single-quoted values and their escapes', () => {
    expect(parseOsRelease(`A="a \\"b\\" \\$c"\nB='x y'\nC=plain\nnot a line\n`)).toEqual({
      A: 'a "b" $c',
      B: 'x y',
      C: 'plain',
    });
  });
});

describe('parseDeviceLabels', () => {
  it('keeps the last value of a repeated key', () => {
    expect(parseDeviceLabels('site=a\nsite=b').labels).toEqual({ site: 'b' });
  });
});
