import type { NodeDetailDto, VerdictSummaryDto } from '#otter/contracts';
import { formatBytes, formatDuration, formatTimestamp, renderTable } from '../output.js';
import { terminalText } from '../terminal-text.js';

/**
 * `otter node show`: one node's story as text. Much of it is what the node said about itself (its inventory,
 * update details, verdict reasons quoting its report): every value goes through terminalText or renderTable,
 * which print control characters escaped.
 */
export function renderNodeDetail(d: NodeDetailDto, now = Date.now()): string {
  const n = d.node;
  const out: string[] = [];
  const field = (name: string, value: string | number | null | undefined): void => {
    out.push(
      terminalText`${name.padEnd(16)}${value === null || value === undefined || value === '' ? '-' : value}`,
    );
  };
  field('node', n.id);
  field('hardware', n.hardwareId);
  field('state', n.state);
  field('version', n.runningVersion);
  field('labels', formatPairs(n.labels));
  field('enrolled', formatTimestamp(n.createdAt));
  field('last seen', n.lastSeenAt && `${formatTimestamp(n.lastSeenAt)} (${ago(n.lastSeenAt, now)} ago)`);

  out.push('', 'identity');
  field('  EK issuer', d.identity.ekCertIssuer);
  field('  EK serial', d.identity.ekCertSerial);
  field('  EK key', d.identity.ekKeySha256 && `sha256 ${d.identity.ekKeySha256}`);
  field('  AK', `sha256 ${d.identity.akPublicSha256} (no expiry: trusted until re-enrollment)`);
  field(
    '  device cert',
    d.identity.deviceCertSerial &&
      `serial ${d.identity.deviceCertSerial}, expires ${formatTimestamp(d.identity.deviceCertNotAfter ?? '-')}`,
  );

  out.push('');
  const inv = d.inventory;
  if (!inv) out.push('inventory       none reported yet');
  else {
    const v = inv.value;
    out.push(terminalText`inventory       reported ${formatTimestamp(inv.reportedAt)}`);
    field('  kernel', v.kernel);
    const osIds = [v.os.id, v.os.versionId].filter(Boolean).join(' ');
    field('  OS', [v.os.prettyName, osIds && `(${osIds})`].filter(Boolean).join(' '));
    field(
      '  boot loader',
      [v.bootLoader, v.bootEnv && `(${v.bootEnv} environment)`].filter(Boolean).join(' '),
    );
    field('  active slot', v.activeSlot);
    field('  slot a', v.slots.a.version);
    field('  slot b', v.slots.b.version);
    field('  disk', v.diskBytes === null ? null : formatBytes(v.diskBytes));
    field('  memory', v.memoryBytes === null ? null : formatBytes(v.memoryBytes));
    field('  agent', v.agentVersion);
    field('  device labels', formatPairs(v.deviceLabels));
  }

  const a = d.attestation;
  out.push('', `attestation     ${a.status} (a pass is fresh for ${formatDuration(a.freshnessSeconds)})`);
  if (a.last) {
    out.push(terminalText`  last          ${verdictLine(a.last)}`);
    for (const m of a.last.mismatches ?? []) {
      out.push(
        terminalText`    PCR ${m.pcr}: quoted ${m.quoted ?? '(not quoted)'}, ${m.source === 'pinned' ? 'pinned' : 'release reference'} ${m.reference}`,
      );
    }
  }
  section(
    out,
    'attestation history',
    ['TIME', 'RESULT', 'RELEASE', 'REASON'],
    a.history.map((v) => [
      formatTimestamp(v.at),
      v.passed ? (v.releaseProven ? 'pass (proven)' : 'pass') : 'FAIL',
      v.releaseVersion ?? '-',
      v.reason,
    ]),
  );
  section(
    out,
    'update steps',
    ['REPORTED', 'STEP', 'OK', 'VERSION', 'BYTES', 'DETAIL'],
    d.updates.steps.map((s) => [
      formatTimestamp(s.reportedAt),
      s.step,
      s.ok ? 'ok' : 'FAIL',
      s.version ?? '-',
      s.bytes === null ? '-' : String(s.bytes),
      s.detail,
    ]),
  );
  section(
    out,
    'downloads',
    ['TIME', 'VERSION', 'METHOD', 'BYTES', 'OF FULL'],
    d.updates.downloads.map((x) => [
      formatTimestamp(x.at),
      x.version,
      x.method,
      String(x.bytesDownloaded),
      String(x.fullBytes),
    ]),
  );
  section(
    out,
    'rollouts',
    ['ROLLOUT', 'NAME', 'VERSION', 'ROLLOUT STATE', 'WAVE', 'NODE STATE', 'REASON'],
    d.rollouts.map((r) => [
      r.rolloutId,
      r.name,
      r.version ?? '-',
      r.rolloutState,
      String(r.wave + 1),
      r.state,
      r.reason ?? '-',
    ]),
  );
  section(
    out,
    'audit',
    ['TIME', 'ACTION', 'ACTOR', 'OUTCOME'],
    d.audit.entries.map((e) => [
      formatTimestamp(e.at),
      e.action,
      e.actor ? `${e.actor.name} (${e.actor.role})` : '-',
      e.outcome,
    ]),
  );
  if (d.audit.nextCursor) out.push(`  older: otter audit list --target node:${n.id}`);
  return `${out.join('\n')}\n`;
}

function section(out: string[], title: string, headers: string[], rows: string[][]): void {
  out.push('', rows.length === 0 ? `${title}: none` : title);
  if (rows.length > 0) out.push(renderTable(headers, rows).trimEnd().replace(/^/gm, '  '));
}

function verdictLine(v: VerdictSummaryDto): string {
  return `${formatTimestamp(v.at)} ${v.passed ? 'pass' : 'FAIL'}: ${v.reason}`;
}

function formatPairs(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/** A rounded age: `42s`, `17m`, `5h`, `3d`. */
function ago(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 2 * 86_400) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}
