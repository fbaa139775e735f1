export type DirectorFileName =
  { role: 'timestamp'; version?: undefined } | { role: 'root' | 'snapshot' | 'targets'; version: number };

const VERSIONED = /^([1-9]\d{0,9})\.(root|snapshot|targets)\.json$/;

/**
 * The files a TUF client asks the director for: `timestamp.json` and `N.root.json`, `N.snapshot.json`,
 * `N.targets.json` (consistent snapshots, no delegations). Anything else is undefined.
 */
export function parseDirectorFileName(name: string): DirectorFileName | undefined {
  if (name === 'timestamp.json') return { role: 'timestamp' };
  const m = VERSIONED.exec(name);
  if (!m) return undefined;
  const version = Number(m[1]);
  if (!Number.isSafeInteger(version) || version > 2 ** 31 - 1) return undefined;
  return { role: m[2] as 'root' | 'snapshot' | 'targets', version };
}
