import type { OtterEvent } from '#otter/contracts';
import { formatBytes, formatTimestamp } from './output.js';
import { terminalText } from './terminal-text.js';

/**
 * One event as one line: time, kind, then what happened. Every value goes through terminalText: reasons and
 * versions can be a device's own text, and must not act on the operator's terminal.
 */
export function eventLine(event: OtterEvent): string {
  return terminalText`${formatTimestamp(event.at)}  ${event.kind}  ${describeEvent(event)}\n`;
}

/** What happened, in words (unescaped: eventLine escapes it). */
export function describeEvent(e: OtterEvent): string {
  switch (e.kind) {
    case 'release.published':
      return `${e.hardwareId} ${e.version} (${formatBytes(e.length)})`;
    case 'delta.build.queued':
      return `${e.hardwareId} ${e.fromVersion} -> ${e.toVersion}`;
    case 'delta.build.progress':
      return `${e.hardwareId} ${e.fromVersion} -> ${e.toVersion}: ${e.stage} ${e.percent}%`;
    case 'delta.build.published':
      return `${e.hardwareId} ${e.fromVersion} -> ${e.toVersion}: ${formatBytes(e.patchLength)} of ${formatBytes(e.fullLength)}`;
    case 'delta.build.failed':
      return `${e.hardwareId} ${e.fromVersion} -> ${e.toVersion}: ${e.reason}`;
    case 'rollout.created':
      return `${e.rolloutId} ${e.name}: ${e.hardwareId} ${e.version}, ${e.waves} wave(s)`;
    case 'rollout.started':
      return `${e.rolloutId}: ${e.nodes} node(s) in waves of ${e.waves.join(', ')}`;
    case 'rollout.wave.started':
      return `${e.rolloutId}: wave ${e.wave}`;
    case 'rollout.node.admitted':
      return `${e.rolloutId}: node ${e.nodeId} (wave ${e.wave}, from ${e.fromVersion ?? 'unknown'})`;
    case 'rollout.node.step':
      return (
        `node ${e.nodeId}: ${e.step} ${e.version}` +
        (e.bytes !== undefined ? ` (${formatBytes(e.bytes)})` : '') +
        (e.reason !== undefined ? `: ${e.reason}` : '') +
        (e.rolloutId ? ` [rollout ${e.rolloutId}]` : '')
      );
    case 'rollout.node.succeeded':
      return `${e.rolloutId}: node ${e.nodeId}`;
    case 'rollout.node.failed':
    case 'node.quarantined':
      return `${e.rolloutId}: node ${e.nodeId}: ${e.reason}`;
    case 'rollout.paused':
    case 'rollout.aborted':
      return `${e.rolloutId}: ${e.reason}`;
    case 'rollout.resumed':
    case 'rollout.completed':
      return e.rolloutId;
    case 'node.enrolled':
      return `${e.nodeId} (${e.hardwareId}) ${e.state}${e.reenrolled ? ', re-enrolled' : ''}`;
    case 'node.approved':
    case 'node.rejected':
    case 'node.revoked':
      return `${e.nodeId} (${e.hardwareId})`;
    case 'node.attestation.verdict':
      return (
        `${e.nodeId}: ${e.verdict}` +
        (e.differingPcrs.length > 0 ? ` (PCR ${e.differingPcrs.map((p) => p.pcr).join(', ')} differ)` : '') +
        `: ${e.reason}`
      );
    case 'tuf.metadata.resigned':
      return `${e.repository} ${e.role} v${e.version}, expires ${e.expires}`;
    case 'tuf.role.expiring':
      return `${e.repository} ${e.role} v${e.version} expires ${e.expires}`;
  }
}
