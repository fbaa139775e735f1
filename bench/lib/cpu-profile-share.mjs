#!/usr/bin/env node
// The share of a V8 CPU profile (.cpuprofile, from `node --cpu-prof`) spent under named entry functions: a
// sample counts for an entry when that function is anywhere on its stack (total time, not self time), so what
// the entry calls (node:crypto, hashing, Redis pipelining) is counted with it, found by the call tree rather
// than by guessing the callees' names. A sample under two entries counts once, for the outermost.
//
//   node bench/lib/cpu-profile-share.mjs PROFILE [--windows FILE] [--ops N] ENTRY...
//
// ENTRY is `name@file` (a function of that name in a script whose URL ends with `file`), `@file` (any function
// of that script) or `name` (any script); `-ENTRY` excludes: a sample under an excluded frame that is nested
// inside an entry does not count (e.g. the token check reached through a wrapper). --windows: a JSON file
// `{ "windows": [{ "start": µs, "end": µs }], "operations": n }` (the profile's clock: process.hrtime in µs)
// to count only samples inside the measured windows, and the operations done in them; --ops overrides it.
// Samples are taken on wall time: time the thread waited for a core counts as busy, so on a loaded machine
// report the share, not the µs.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The token binding's own entry points in the built api (dist/), for the device paths (attestation, director
 * poll): everything they call counts with them. Not here: what the bearer build did too (reading the
 * Authorization header, the access token's check and its cache), and the Redis replies to the jti writes,
 * which ioredis parses on its socket's stack, not under the write.
 */
export const BINDING_ENTRIES = [
  // The proof: size and connection checks, parsing, the ES256 verify (node:crypto), claims, ath, the jti handed
  // to the replay cache, binding the connection; per connection, the bound-header compare.
  'verify@libs/identity/src/dpop-proof.js',
  // Per connection: the token last proven on the connection, looked up and remembered.
  'tokenOn@libs/identity/src/dpop-proof.js',
  'rememberToken@libs/identity/src/dpop-proof.js',
  // The replay cache: batching the jtis and the SET NX pipeline to Redis.
  '@libs/identity/src/dpop-replay-cache.js',
  // cnf.jkt against the node's current device key (its thumbprint, cached per key).
  'deviceKeyThumbprint@libs/nodes/src/device-key-thumbprint.js',
  // The htu the proof must name (a getter only the proof check reads).
  'get url@apps/api/src/devices/device-credentials.js',
];

/** @param {string} spec `name@file`, `@file` or `name` */
export function entryMatcher(spec) {
  const at = spec.indexOf('@');
  const name = at === -1 ? spec : spec.slice(0, at);
  const file = at === -1 ? '' : spec.slice(at + 1);
  return (frame) => (name === '' || frame.functionName === name) && (file === '' || frame.url.endsWith(file));
}

/**
 * Busy time inside `windows` (all of it without), and the part under each entry.
 * @param {{ nodes: any[], samples: number[], timeDeltas: number[], startTime: number }} profile
 * @param {{ entries: string[], exclude?: string[], windows?: { start: number, end: number }[] }} options
 */
export function profileShare(profile, { entries, exclude = [], windows }) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const matchers = entries.map((spec) => [spec, entryMatcher(spec)]);
  const excluders = exclude.map(entryMatcher);
  /** Per profile node: the entry its samples count for (outermost on the stack), or null. */
  const owner = new Map();
  const ownerOf = (id) => {
    if (owner.has(id)) return owner.get(id);
    let found = null;
    let excluded = false;
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur).callFrame;
      const entry = matchers.find(([, match]) => match(frame));
      // An entry counts when no excluded frame lies between it and the sample (its callee is not its work).
      if (entry && !excluded) found = entry[0];
      else if (!entry && excluders.some((match) => match(frame))) excluded = true;
    }
    owner.set(id, found);
    return found;
  };
  const under = new Map(entries.map((e) => [e, 0]));
  let busy = 0;
  let idle = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i];
    // A sample stands for the time up to the next one.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    if (windows && !windows.some((w) => t >= w.start && t <= w.end)) continue;
    const id = profile.samples[i];
    if (byId.get(id).callFrame.functionName === '(idle)') {
      idle += dt;
      continue;
    }
    busy += dt;
    const entry = ownerOf(id);
    if (entry) under.set(entry, under.get(entry) + dt);
  }
  const total = [...under.values()].reduce((a, b) => a + b, 0);
  return { busy, idle, total, under: [...under] };
}

/** Lines of a report: µs per operation and share of busy time, per entry and in total. */
export function describeShare(share, operations) {
  const per = (us) => (operations ? (us / operations).toFixed(1) : '-');
  const pct = (us) => `${((100 * us) / Math.max(1, share.busy)).toFixed(1)}%`;
  const width = Math.max(24, ...share.under.map(([e]) => e.length));
  return [
    `busy ${per(share.busy)} µs per operation (${operations ?? '?'} operations), idle ` +
      `${((100 * share.idle) / Math.max(1, share.busy + share.idle)).toFixed(0)}% of the sampled time`,
    ...share.under.map(
      ([e, us]) => `  ${e.padEnd(width)}  ${per(us).padStart(7)} µs/op  ${pct(us).padStart(6)}`,
    ),
    `  ${'under the entries'.padEnd(width)}  ${per(share.total).padStart(7)} µs/op  ${pct(share.total).padStart(6)}`,
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const take = (flag) => {
    const i = args.indexOf(flag);
    if (i === -1) return undefined;
    const [, value] = args.splice(i, 2);
    return value;
  };
  const windowsFile = take('--windows');
  const opsArg = take('--ops');
  const [file, ...specs] = args;
  if (!file || specs.length === 0 || args.includes('--help')) {
    process.stderr.write(
      'usage: node bench/lib/cpu-profile-share.mjs PROFILE [--windows FILE] [--ops N] ENTRY... [-ENTRY...]\n',
    );
    process.exit(2);
  }
  const meta = windowsFile ? JSON.parse(readFileSync(windowsFile, 'utf8')) : {};
  const share = profileShare(JSON.parse(readFileSync(file, 'utf8')), {
    entries: specs.filter((s) => !s.startsWith('-')),
    exclude: specs.filter((s) => s.startsWith('-')).map((s) => s.slice(1)),
    windows: meta.windows,
  });
  process.stdout.write(`${describeShare(share, opsArg ? Number(opsArg) : meta.operations).join('\n')}\n`);
}
