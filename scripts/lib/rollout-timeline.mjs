// The timeline `make demo` prints while a rollout runs: what each node's `otter-agent run` says (one JSON
// line per step) and what the api says about the rollout and its nodes (polled), merged in time order.
// Plain Node, no deps.
import { setTimeout as sleep } from 'node:timers/promises';

/** Bytes as people read them: 343 KiB, 8.3 MiB. */
export function formatBytes(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(unit === 1 ? 0 : 1)} ${units[unit]}`;
}

/** What an agent's `installed` report says about its download (`detail`: "delta, N of M bytes downloaded"). */
export function describeDownload(report) {
  const match = /^(delta|full), (\d+) of (\d+) bytes/.exec(report.detail ?? '');
  const method = match?.[1] ?? 'full';
  const bytes = match ? Number(match[2]) : (report.bytes ?? 0);
  const length = match ? Number(match[3]) : bytes;
  return { method, bytes, length, text: `${method}, ${formatBytes(bytes)} of ${formatBytes(length)}` };
}

const plain = (text) => text;

/**
 * A rollout's timeline. Entries wait `holdMs` before they are printed, so one that arrives a little late (a
 * poll sees a state change up to `pollMs` after it happened) still lands in its place.
 *
 * @param {{
 *   api: (path: string) => Promise<any>,
 *   nodeOf: (nodeId: string) => { id: string, name: string } | undefined,
 *   print: (line: string) => void,
 *   paint?: { bold?: (s: string) => string, green?: (s: string) => string, red?: (s: string) => string,
 *     yellow?: (s: string) => string },
 *   previousVersion: string,
 *   pcr: number,
 *   holdMs?: number,
 *   pollMs?: number,
 * }} options previousVersion: what a node that rolls back runs again; pcr: the PCR a boot measures into.
 */
export function createRolloutTimeline({
  api,
  nodeOf,
  print,
  paint = {},
  previousVersion,
  pcr,
  holdMs = 700,
  pollMs = 500,
}) {
  const { bold = plain, green = plain, red = plain, yellow = plain } = paint;
  const pending = [];
  const seenNodes = new Map();
  const errorsSeen = new Set();
  let rolloutId;
  let t0;
  let printing = false;
  let poller;
  let flusher;
  let lastError;

  const add = (at, who, text, color = plain) => pending.push({ at, who, text, color });

  function show(entry) {
    const when = `+${((entry.at - t0) / 1000).toFixed(1)}s`.padStart(8);
    const member = entry.who?.id === undefined ? undefined : seenNodes.get(entry.who.id);
    const wave = member ? `wave ${member.wave + 1}` : '';
    print(
      entry.color(`${when}  ${(entry.who?.name ?? 'rollout').padEnd(8)} ${wave.padEnd(6)}  ${entry.text}`),
    );
  }

  function flushUpTo(limit) {
    if (t0 === undefined) return;
    // Stable: entries of one instant keep the order they were added in.
    pending.sort((a, b) => a.at - b.at);
    while (pending.length > 0 && pending[0].at <= limit) show(pending.shift());
  }

  function agentEntry(node, e) {
    const at = Date.parse(e.at);
    if (e.event === 'attested') {
      const asked = e.asked ? ` (asked: ${e.asked})` : '';
      if (e.passed) add(at, node, `attested on request${asked}: passed`);
      else add(at, node, `attested on request${asked}: FAILED: ${e.reason}`, red);
    } else if (e.event === 'error') {
      // A failing poll repeats with backoff: once per node and message says it.
      if (errorsSeen.has(`${node.name} ${e.error}`)) return;
      errorsSeen.add(`${node.name} ${e.error}`);
      add(at, node, `agent error (retries with backoff): ${e.error}`, yellow);
    } else if (e.event === 'update') {
      const texts = {
        assigned: () => `the director's signed metadata names ${e.version}: downloading`,
        installed: () =>
          `installed ${e.version} in slot ${e.slot} (${describeDownload(e).text}); rebooting into it on trial`,
        booted: () => `booted slot ${e.slot} on trial; measured it into PCR ${pcr}`,
        attested: () => `attested: its TPM quote shows ${e.version}'s measurements`,
        committed: () => `health check passed: committed slot ${e.slot}, runs ${e.version}`,
        'rolled-back': () =>
          `ROLLED BACK: ${e.detail}; boots its previous slot with ${previousVersion} again`,
        failed: () => `FAILED: ${e.detail}`,
      };
      const colors = { committed: green, 'rolled-back': red, failed: red };
      // `downloading` and `rebooting` follow `assigned` and `installed` at once: their lines say so.
      if (texts[e.step]) add(at, node, texts[e.step](), colors[e.step]);
    }
  }

  function pollEntries(previous, r, nodes, now) {
    if (!previous) t0 = Date.parse(r.startedAt ?? new Date(now).toISOString());
    for (const n of nodes) {
      const before = seenNodes.get(n.nodeId);
      seenNodes.set(n.nodeId, n);
      const node = nodeOf(n.nodeId);
      if (!node) continue;
      if (n.admittedAt && !before?.admittedAt) {
        add(
          Date.parse(n.admittedAt),
          node,
          `admitted (fresh passing attestation): the director assigns ${r.version}`,
        );
      }
      if (n.state === before?.state) continue;
      const at = Date.parse(n.finishedAt ?? n.updatedAt);
      if (n.state === 'succeeded') {
        add(at, node, `SUCCEEDED: Otter verified a quote of ${r.version}'s measurements`, green);
      } else if (n.state === 'excluded' || n.state === 'cancelled') {
        add(at, node, `${n.state}: ${n.reason}`, yellow);
      } else if (n.state === 'failed' || n.state === 'quarantined') {
        add(at, node, `${n.state.toUpperCase()}: ${n.reason}`, red);
      }
    }
    const sizes = r.progress.map((w) => w.size);
    const members = (wave) =>
      nodes
        .filter((n) => n.wave === wave)
        .map((n) => nodeOf(n.nodeId)?.name ?? n.nodeId)
        .sort()
        .join(', ');
    // The tick that starts a wave or completes the rollout first proved nodes' success: their lines go first.
    const lastFinished = (beforeWave) =>
      Math.max(
        0,
        ...nodes.filter((n) => n.wave < beforeWave && n.finishedAt).map((n) => Date.parse(n.finishedAt)),
      );
    if (!previous) {
      add(
        t0,
        null,
        bold(`rollout started: ${sizes.reduce((a, b) => a + b, 0)} nodes in waves of ${sizes.join(', ')}`),
      );
      add(t0, null, bold(`wave 1 of ${sizes.length} starts: ${members(0)}`));
      return;
    }
    if (r.currentWave !== previous.currentWave) {
      const at = Math.max(r.waveStartedAt ? Date.parse(r.waveStartedAt) : now, lastFinished(r.currentWave));
      add(at, null, bold(`wave ${r.currentWave + 1} of ${sizes.length} starts: ${members(r.currentWave)}`));
    }
    if (r.state === previous.state || r.state === 'running') return;
    if (r.state === 'paused') add(now, null, bold(`rollout PAUSED: ${r.stateReason}`), yellow);
    else if (r.state === 'completed') {
      const count = (state) => nodes.filter((n) => n.state === state).length;
      const at = Math.max(r.finishedAt ? Date.parse(r.finishedAt) : now, lastFinished(Infinity));
      const left = ['excluded', 'cancelled', 'failed']
        .filter((state) => count(state) > 0)
        .map((state) => `, ${count(state)} ${state}`)
        .join('');
      add(at, null, bold(`rollout COMPLETED: ${count('succeeded')} succeeded${left}`), green);
    } else add(now, null, bold(`rollout ${r.state.toUpperCase()}: ${r.stateReason ?? ''}`), yellow);
  }

  async function poll() {
    const r = await api(`/api/v1/rollouts/${rolloutId}`);
    const { nodes } = await api(`/api/v1/rollouts/${rolloutId}/nodes`);
    pollEntries(timeline.rollout, r, nodes, Date.now());
    timeline.rollout = r;
  }

  const timeline = {
    /** The rollout as last polled. */
    rollout: undefined,
    /** Starts polling rollout `id` and printing; times are seconds since it started. */
    watch(id) {
      rolloutId = id;
      printing = true;
      const loop = async () => {
        try {
          await poll();
          lastError = undefined;
        } catch (error) {
          lastError = error instanceof Error ? error.message : String(error);
        }
        const state = timeline.rollout?.state;
        if (printing && state !== 'completed' && state !== 'aborted') poller = setTimeout(loop, pollMs);
      };
      void loop();
      flusher = setInterval(() => flushUpTo(Date.now() - holdMs), 200);
    },
    /** One parsed JSON line of a node's `otter-agent run`; `node` is { id, name }. */
    agentEvent(node, event) {
      if (printing) agentEntry(node, event);
    },
    /** Something the demo did, e.g. an operator's command, at `at` (ms since the epoch). */
    note(at, text) {
      if (printing) add(at, { name: 'operator' }, text, bold);
    },
    /** Prints everything collected so far. */
    flush() {
      flushUpTo(Infinity);
    },
    /** Stops polling and printing (what is collected is printed first). */
    stop() {
      clearTimeout(poller);
      clearInterval(flusher);
      if (printing) timeline.flush();
      printing = false;
    },
    /**
     * Waits until a poll shows a rollout for which `check` holds. After `timeoutMs` it throws, with each
     * node's state in the message.
     */
    async until(check, timeoutMs, what) {
      const deadline = Date.now() + timeoutMs;
      while (!timeline.rollout || !check(timeline.rollout)) {
        if (Date.now() > deadline) {
          const r = timeline.rollout;
          const states = [...seenNodes.values()].map(
            (n) => `${nodeOf(n.nodeId)?.name ?? n.nodeId}: ${n.state}${n.reason ? ` (${n.reason})` : ''}`,
          );
          throw new Error(
            [
              `timed out after ${timeoutMs / 1000} s waiting for ${what}: the rollout is ` +
                `${r?.state ?? 'unknown'} (${r?.stateReason ?? 'no reason'})` +
                (lastError ? `; the last poll failed: ${lastError}` : ''),
              ...states,
            ].join('\n'),
          );
        }
        await sleep(100);
      }
    },
  };
  return timeline;
}
