import { LABEL_PATTERN, NODE_INVENTORY_LIMITS, type NodeInventory } from '#otter/contracts';
import { clipText } from '../daemon/clip-text.js';
import type { InventorySources } from './inventory-sources.js';

/** What the agent knows about itself rather than the machine: its boot environment, slots and version. */
export interface InventoryContext {
  /** How the agent was told to reach the boot environment: `file`, `uboot` or `grub`. */
  bootEnv: 'file' | 'uboot' | 'grub' | null;
  activeSlot: 'a' | 'b' | null;
  slotVersions: { a: string | null; b: string | null };
  agentVersion: string;
}

/** The boot loader behind each kind of boot environment (a file one is the simulated bootloader's). */
const BOOT_LOADERS = { file: 'simulated', uboot: 'u-boot', grub: 'grub' } as const;

/**
 * The node's inventory, shaped so Otter accepts it: text is clipped to the contract's limits and rid of NUL
 * (Otter refuses rather than cuts, and a refused inventory would be refused again on every cycle), device
 * labels that are not valid labels are left out. What was left out or cut is said in `warnings`.
 */
export async function collectInventory(
  sources: InventorySources,
  context: InventoryContext,
): Promise<{ inventory: NodeInventory; warnings: string[] }> {
  const [kernel, osText, labelsText, diskBytes, memoryBytes] = await Promise.all([
    sources.kernelRelease(),
    sources.osReleaseText(),
    sources.deviceLabelsText(),
    sources.diskBytes(),
    sources.memoryBytes(),
  ]);
  const os = parseOsRelease(osText ?? '');
  const labels = parseDeviceLabels(labelsText ?? '');
  const short = (t: string | null) => fit(t, NODE_INVENTORY_LIMITS.short);
  return {
    inventory: {
      kernel: fit(kernel, NODE_INVENTORY_LIMITS.text),
      os: {
        prettyName: fit(os.PRETTY_NAME ?? null, NODE_INVENTORY_LIMITS.text),
        id: short(os.ID ?? null),
        versionId: short(os.VERSION_ID ?? null),
      },
      bootLoader: context.bootEnv && BOOT_LOADERS[context.bootEnv],
      bootEnv: context.bootEnv,
      activeSlot: context.activeSlot,
      slots: {
        a: { version: short(context.slotVersions.a) },
        b: { version: short(context.slotVersions.b) },
      },
      diskBytes: size(diskBytes),
      memoryBytes: size(memoryBytes),
      agentVersion: short(context.agentVersion) ?? '',
      deviceLabels: labels.labels,
    },
    warnings: labels.warnings,
  };
}

/** os-release(5): `KEY=value` lines, the value maybe quoted; comments and blank lines skipped. */
export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Z0-9_]+)=(.*?)\s*$/.exec(line);
    if (!m) continue;
    out[m[1]!] = unquote(m[2]!);
  }
  return out;
}

function unquote(value: string): string {
  const q = value[0];
  if ((q === '"' || q === "'") && value.endsWith(q) && value.length >= 2) {
    const inner = value.slice(1, -1);
    return q === '"' ? inner.replace(/\\(["\\$`])/g, '$1') : inner;
  }
  return value;
}

/**
 * The device labels file: one `key=value` a line, `#` comments. A key must be a valid label key; the value is
 * free text up to NODE_INVENTORY_LIMITS.deviceLabelValue characters (cut beyond). At most
 * NODE_INVENTORY_LIMITS.deviceLabels labels (the first ones); a repeated key keeps its last value.
 */
export function parseDeviceLabels(text: string): { labels: Record<string, string>; warnings: string[] } {
  const labels: Record<string, string> = {};
  const warnings: string[] = [];
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq).trim();
    if (eq < 0 || !LABEL_PATTERN.test(key)) {
      warnings.push(`labels line ${index + 1}: not key=value with a valid label key; left out`);
      return;
    }
    if (!(key in labels) && Object.keys(labels).length >= NODE_INVENTORY_LIMITS.deviceLabels) {
      warnings.push(
        `labels line ${index + 1}: more than ${NODE_INVENTORY_LIMITS.deviceLabels} labels; left out`,
      );
      return;
    }
    const value = line.slice(eq + 1).trim();
    const fitted = fit(value, NODE_INVENTORY_LIMITS.deviceLabelValue) ?? '';
    if (fitted !== value) warnings.push(`labels line ${index + 1}: value cut to what Otter accepts`);
    labels[key] = fitted;
  });
  return { labels, warnings };
}

function fit(text: string | null, max: number): string | null {
  if (text === null) return null;
  return clipText(text.replaceAll('\0', ''), max);
}

function size(bytes: number | null): number | null {
  return bytes !== null && Number.isSafeInteger(bytes) && bytes >= 0 ? bytes : null;
}
