import { allBinNames, binNameFor } from './hashed-bins.js';

/**
 * How the top-level targets role delegates. Each family is a path-delegated role (`images/*∕*`) that in turn
 * delegates to succinct hash bins, so a client downloads one small bin instead of every target ever published.
 */
export interface TargetFamily {
  role: string;
  pattern: string;
  binPrefix: string;
}

export const IMAGE_REPOSITORY_FAMILIES: TargetFamily[] = [
  { role: 'images', pattern: 'images/*/*', binPrefix: 'images-bin' },
  { role: 'deltas', pattern: 'deltas/*/*', binPrefix: 'deltas-bin' },
];

const SEGMENT = /^[A-Za-z0-9_+-][A-Za-z0-9._+-]{0,127}$/;

export class DelegationLayout {
  constructor(
    readonly families: TargetFamily[],
    readonly binBits: number,
  ) {}

  /** The family a target path belongs to, or a reason why the path is not acceptable. */
  classify(path: string): { family: TargetFamily; bin: string } | { error: string } {
    if (path.length > 512) return { error: 'target path longer than 512 characters' };
    const segments = path.split('/');
    if (segments.some((s) => !SEGMENT.test(s) || s === '.' || s === '..')) {
      return { error: 'each path segment must be 1-128 of [A-Za-z0-9._+-] and not start with a dot' };
    }
    const family = this.families.find((f) => globMatches(f.pattern, path));
    if (!family)
      return { error: `path matches no delegation (${this.families.map((f) => f.pattern).join(', ')})` };
    return { family, bin: binNameFor(path, family.binPrefix, this.binBits) };
  }

  bins(family: TargetFamily): string[] {
    return allBinNames(family.binPrefix, this.binBits);
  }

  /** Every targets-type role: top-level, one per family, and all bins. */
  allTargetsRoles(): string[] {
    return ['targets', ...this.families.flatMap((f) => [f.role, ...this.bins(f)])];
  }

  isBin(role: string): boolean {
    return this.families.some((f) => role.startsWith(`${f.binPrefix}-`));
  }
}

/** TUF path pattern semantics: `*` matches within one segment, never across `/`. */
export function globMatches(pattern: string, path: string): boolean {
  const p = pattern.split('/');
  const s = path.split('/');
  if (p.length !== s.length) return false;
  return p.every((seg, i) =>
    new RegExp(`^${seg.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`).test(s[i]!),
  );
}
