import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { NodesClient, resolveClientSettings, type NodeListParams } from '#otter/api-client';
import type { AllowEnrollmentRequest, NodeDto } from '#otter/contracts';
import { processCliContext, writeJson, type CliContext } from '../cli-context.js';
import { formatTimestamp, renderTable } from '../output.js';
import { terminalText } from '../terminal-text.js';
import { checkUsage, exitWithUsageCode, usageError } from '../usage-errors.js';
import { renderNodeDetail } from './node-show.js';
import { collect, labelSet, parseLabel } from './rollout-args.js';

interface NodeListFlags {
  hardware?: string;
  state?: string;
  version?: string;
  label: string[];
  attestation?: string;
  seenWithin?: string;
  notSeenFor?: string;
  search?: string;
  limit?: string;
  cursor?: string;
  all?: boolean;
  json?: boolean;
}

/** A repeatable option's values, in order; the server checks each (and says which is wrong). */
function collectText(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function nodesClient(ctx: CliContext): NodesClient {
  return new NodesClient(resolveClientSettings(ctx.env, ctx.cwd));
}

export function registerNodeCommands(program: Command, ctx: CliContext = processCliContext()): void {
  const node = program.command('node').description('enrolled nodes: identity, attestation, approval');

  node
    .command('list')
    .description(
      'nodes with identity state, last attestation verdict and its age; a page at a time (oldest first), ' +
        'narrowed by the filters',
    )
    .option('--hardware <id>', 'only this hardware id')
    .option('--state <state>', 'only nodes in this identity state (active, pending-approval, ...)')
    .option('--version <version>', 'only nodes running this release version')
    .option(
      '--label <key=value>',
      'only nodes with this operator label (repeat: all of them)',
      collectText,
      [],
    )
    .option(
      '--attestation <status>',
      'passed, failed, stale (passed, but longer ago than the freshness) or never',
    )
    .option('--seen-within <duration>', 'seen within this long, e.g. 15m, 1h, 7d')
    .option('--not-seen-for <duration>', 'not seen for at least this long (or never), e.g. 1d')
    .option('--search <prefix>', 'node id prefix')
    .option('--limit <n>', 'nodes a page (1..1000; the server says 100)')
    .option('--cursor <cursor>', 'the page after the one that printed this cursor')
    .option('--all', 'every page, not only the first')
    .option('--json', 'print as JSON: id, hardware, state, last verdict, its age in seconds; and nextCursor')
    .action(async (opts: NodeListFlags) => {
      const client = nodesClient(ctx);
      const params: NodeListParams = {
        hardware: opts.hardware,
        state: opts.state,
        version: opts.version,
        label: opts.label.length > 0 ? opts.label : undefined,
        attestation: opts.attestation,
        seenWithin: opts.seenWithin,
        notSeenFor: opts.notSeenFor,
        q: opts.search,
        limit: opts.limit === undefined ? undefined : Number(opts.limit),
      };
      let nodes: NodeDto[];
      let nextCursor: string | null = null;
      if (opts.all) nodes = await client.listNodes(params);
      else {
        const page = await client.listNodePage({ ...params, cursor: opts.cursor });
        nodes = page.nodes;
        nextCursor = page.nextCursor;
      }
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
            lastSeenAt: n.lastSeenAt,
            labels: n.labels,
          })),
          nextCursor,
        });
        return;
      }
      if (nodes.length === 0) ctx.stderr.write('no nodes\n');
      else {
        ctx.stdout.write(
          renderTable(
            ['ID', 'HARDWARE', 'STATE', 'VERSION', 'LAST VERDICT', 'AGE', 'LAST SEEN', 'ENROLLED', 'LABELS'],
            nodes.map((n) => [
              n.id,
              n.hardwareId,
              n.state,
              n.runningVersion ?? '-',
              n.lastVerdict ? `${n.lastVerdict.passed ? 'pass' : 'FAIL'}: ${n.lastVerdict.reason}` : '-',
              n.lastVerdict ? `${n.lastVerdict.ageSeconds}s` : '-',
              n.lastSeenAt ? formatTimestamp(n.lastSeenAt) : '-',
              formatTimestamp(n.createdAt),
              formatLabels(n.labels) || '-',
            ]),
          ),
        );
      }
      if (nextCursor) ctx.stderr.write(`more nodes: --cursor ${nextCursor} (or --all)\n`);
    });

  node
    .command('show')
    .description(
      "one node's whole story: identity, inventory, attestation (each PCR that differed), update steps, " +
        'downloads, rollouts',
    )
    .argument('<id>', 'node id, from `otter node list`')
    .option('--json', 'print the API answer as JSON')
    .action(async (id: string, opts: { json?: boolean }) => {
      const detail = await nodesClient(ctx).nodeDetail(id);
      if (opts.json) writeJson(ctx, detail);
      else ctx.stdout.write(renderNodeDetail(detail));
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

  node
    .command('re-enroll')
    .description(
      'admin: a re-imaged board keeps its node: for a while (OTTER_REENROLL_WINDOW) its own TPM may enroll once ' +
        'more into this node, which re-pins its attestation key and boot PCRs and keeps its id and history',
    )
    .argument('<id>', 'node id, from `otter node list`')
    .action(async (id: string) => {
      const result = await nodesClient(ctx).reenrollNode(id);
      ctx.stdout.write(
        `${result.node.id}: ${result.node.state}; re-enrollment open until ${result.reenrollUntil}: run ` +
          '`otter-agent enroll` on the re-imaged board (same TPM) before then\n',
      );
    });

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
    .description(
      'pre-approve enrollments by EK certificate (issuer and serial) or EK public area hash; ' +
        'a TPM some node already holds is never approved by this',
    )
    .option('--ek-certificate <file>', 'the EK certificate (PEM or DER): allows its issuer and serial')
    .option(
      '--ek-issuer <dn>',
      'EK certificate issuer, e.g. "CN=Example TPM CA,O=Example" (with --ek-serial)',
    )
    .option('--ek-serial <hex>', 'EK certificate serial number, hex (with --ek-issuer)')
    .option('--ek-public-sha256 <hex>', 'sha256 of the EK public area, hex')
    .option('--note <text>', 'why', '')
    .action(
      async (opts: {
        ekCertificate?: string;
        ekIssuer?: string;
        ekSerial?: string;
        ekPublicSha256?: string;
        note: string;
      }) => {
        const entries: AllowEnrollmentRequest[] = [];
        if (opts.ekSerial !== undefined || opts.ekIssuer !== undefined) {
          if (opts.ekSerial === undefined || opts.ekIssuer === undefined) {
            throw new Error(
              'an EK serial names a certificate only with its issuer (another CA may issue the same serial): ' +
                'give --ek-issuer and --ek-serial together, or --ek-certificate FILE',
            );
          }
          entries.push({
            kind: 'ek-issuer-serial',
            issuer: opts.ekIssuer,
            serial: opts.ekSerial,
            note: opts.note,
          });
        }
        if (opts.ekCertificate !== undefined) {
          const certificate = await issuerAndSerial(resolve(ctx.cwd, opts.ekCertificate));
          entries.push({ kind: 'ek-issuer-serial', ...certificate, note: opts.note });
        }
        if (opts.ekPublicSha256 !== undefined) {
          entries.push({
            kind: 'ek-public-sha256',
            value: opts.ekPublicSha256.toLowerCase(),
            note: opts.note,
          });
        }
        if (entries.length === 0) {
          throw new Error(
            'give --ek-certificate FILE, --ek-issuer DN with --ek-serial HEX, or --ek-public-sha256 HEX',
          );
        }
        const client = nodesClient(ctx);
        for (const entry of entries) await client.allowEnrollment(entry);
        ctx.stdout.write('allowed\n');
      },
    );
}

/**
 * The issuer (rendered as the api renders the EK certificates it verifies) and serial of a certificate file.
 * Loaded on use: the X.509 library is needed by this command only.
 */
async function issuerAndSerial(file: string): Promise<{ issuer: string; serial: string }> {
  const bytes = await readFile(file);
  await import('reflect-metadata');
  const { X509Certificate } = await import('@peculiar/x509');
  let certificate: InstanceType<typeof X509Certificate>;
  try {
    const text = bytes.toString('latin1');
    certificate = new X509Certificate(text.includes('-----BEGIN CERTIFICATE-----') ? text : bytes);
  } catch {
    throw new Error(`${file} is not an X.509 certificate (PEM or DER)`);
  }
  return { issuer: certificate.issuer, serial: certificate.serialNumber.toLowerCase() };
}

function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
