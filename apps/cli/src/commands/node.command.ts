import type { Command } from 'commander';
import { NodesClient, resolveClientSettings } from '#otter/api-client';
import type { NodeDto } from '#otter/contracts';
import { processCliContext, writeJson, type CliContext } from '../cli-context.js';
import { formatTimestamp, renderTable } from '../output.js';
import { terminalText } from '../terminal-text.js';
import { checkUsage, exitWithUsageCode, usageError } from '../usage-errors.js';
import { collect, labelSet, parseLabel } from './rollout-args.js';

function nodesClient(ctx: CliContext): NodesClient {
  return new NodesClient(resolveClientSettings(ctx.env, ctx.cwd));
}

export function registerNodeCommands(program: Command, ctx: CliContext = processCliContext()): void {
  const node = program.command('node').description('enrolled nodes: identity, attestation, approval');

  node
    .command('list')
    .description('nodes with identity state, last attestation verdict and its age')
    .option('--json', 'print as JSON: id, hardware, state, last verdict, its age in seconds')
    .action(async (opts: { json?: boolean }) => {
      const nodes = await nodesClient(ctx).listNodes();
      if (opts.json) {
        writeJson(ctx, {
          nodes: nodes.map((n) => ({
            id: n.id,
            hardware: n.hardwareId,
            state: n.state,
            runningVersion: n.runningVersion,
            lastVerdict: n.lastVerdict && (n.lastVerdict.passed ? 'pass' : 'fail'),
            lastVerdictReason: n.lastVerdict?.reason ?? null,
            lastVerdictAgeSeconds: n.lastVerdict?.ageSeconds ?? null,
            labels: n.labels,
          })),
        });
        return;
      }
      if (nodes.length === 0) {
        ctx.stderr.write('no nodes\n');
        return;
      }
      ctx.stdout.write(
        renderTable(
          ['ID', 'HARDWARE', 'STATE', 'VERSION', 'LAST VERDICT', 'AGE', 'ENROLLED', 'LABELS'],
          nodes.map((n) => [
            n.id,
            n.hardwareId,
            n.state,
            n.runningVersion ?? '-',
            n.lastVerdict ? `${n.lastVerdict.passed ? 'pass' : 'FAIL'}: ${n.lastVerdict.reason}` : '-',
            n.lastVerdict ? `${n.lastVerdict.ageSeconds}s` : '-',
            formatTimestamp(n.createdAt),
            formatLabels(n.labels) || '-',
          ]),
        ),
      );
    });

  const action = (
    name: string,
    description: string,
    call: (c: NodesClient, id: string) => Promise<NodeDto>,
  ): void => {
    node
      .command(name)
      .description(description)
      .argument('<id>', 'node id, from `otter node list`')
      .action(async (id: string) => {
        const result = await call(nodesClient(ctx), id);
        ctx.stdout.write(terminalText`${result.id}: ${result.state}\n`);
      });
  };
  action('approve', 'admit a node whose enrollment waits for approval', (c, id) => c.approveNode(id));
  action('reject', 'refuse a pending enrollment', (c, id) => c.rejectNode(id));
  action('revoke', 'revoke a node: its tokens and certificate stop working at once', (c, id) =>
    c.revokeNode(id),
  );
  action('repin', "accept the node's current firmware and boot PCRs as its new baseline", (c, id) =>
    c.repinNode(id),
  );

  // Its own usage errors exit with 2; the other node commands keep commander's 1.
  exitWithUsageCode(
    node
      .command('label')
      .description(
        "replace a node's labels, which rollout selectors match (`--label` of `otter rollout create`)",
      )
      .argument('<id>', 'node id, from `otter node list`')
      .argument('[labels...]', 'key=value pairs: the whole new set', collect(parseLabel))
      .option('--clear', 'remove every label')
      .action(
        async (id: string, pairs: Array<[string, string]>, opts: { clear?: boolean }, command: Command) => {
          if (opts.clear && pairs.length > 0)
            usageError(command, 'give key=value pairs or --clear, not both');
          if (!opts.clear && pairs.length === 0) {
            usageError(command, 'give key=value pairs, or --clear to remove every label');
          }
          const labels = checkUsage(command, () => labelSet(pairs));
          const result = await nodesClient(ctx).setLabels(id, labels);
          ctx.stdout.write(terminalText`${result.id}: ${formatLabels(result.labels) || 'no labels'}\n`);
        },
      ),
  );

  node
    .command('allow')
    .description('pre-approve enrollments by EK certificate serial or EK public key hash')
    .option('--ek-serial <hex>', 'EK certificate serial number, hex')
    .option('--ek-public-sha256 <hex>', 'sha256 of the EK public area, hex')
    .option('--note <text>', 'why', '')
    .action(async (opts: { ekSerial?: string; ekPublicSha256?: string; note: string }) => {
      const client = nodesClient(ctx);
      if (opts.ekSerial) await client.allowEnrollment('ek-serial', opts.ekSerial.toLowerCase(), opts.note);
      if (opts.ekPublicSha256)
        await client.allowEnrollment('ek-public-sha256', opts.ekPublicSha256.toLowerCase(), opts.note);
      if (!opts.ekSerial && !opts.ekPublicSha256) throw new Error('give --ek-serial or --ek-public-sha256');
      ctx.stdout.write('allowed\n');
    });
}

function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
