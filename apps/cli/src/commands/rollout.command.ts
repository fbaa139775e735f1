import type { Command } from 'commander';
import { resolveClientSettings, RolloutsClient } from '#otter/api-client';
import {
  HARDWARE_ID_PATTERN,
  type CreateRolloutRequest,
  type MaintenanceWindow,
  type RolloutDto,
  type RolloutNodeDto,
  type WaveSpec,
} from '#otter/contracts';
import { processCliContext, writeJson, type CliContext } from '../cli-context.js';
import { formatDuration, formatTimestamp, renderTable } from '../output.js';
import { terminalSafe, terminalText } from '../terminal-text.js';
import { watchRollout } from './rollout-watch.js';
import { checkUsage, exitWithUsageCode, usageError } from '../usage-errors.js';
import {
  collect,
  completeWaves,
  labelSet,
  parseDuration,
  parseLabel,
  parsePositiveInteger,
  parseShare,
  parseWave,
  parseWindow,
  type WaveArg,
} from './rollout-args.js';

interface CreateOptions {
  hardware: string;
  version: string;
  label?: Array<[string, string]>;
  node?: string[];
  wave: WaveArg[];
  soak?: number;
  success: number;
  failure: number;
  maxAttestationAge: number;
  deadline?: number;
  window?: MaintenanceWindow;
  maxConcurrent?: number;
  name?: string;
  start?: boolean;
  json?: boolean;
}

const NO_REASON = 'no reason given';

function rolloutsClient(ctx: CliContext): RolloutsClient {
  return new RolloutsClient(resolveClientSettings(ctx.env, ctx.cwd));
}

export function registerRolloutCommands(program: Command, ctx: CliContext = processCliContext()): void {
  // Set before the subcommands are added, so they inherit it: a bad command line exits with 2.
  const rollout = exitWithUsageCode(
    program.command('rollout').description('move a group of nodes to a release, wave by wave'),
  );

  rollout
    .command('create')
    .description('create a rollout (a draft until started); prints its id and state')
    .requiredOption('--hardware <id>', 'hardware id of the release')
    .requiredOption('--version <version>', 'the release version to roll out')
    .option(
      '--label <key=value>',
      'only nodes with this label (repeatable; all must match)',
      collect(parseLabel),
    )
    .option('--node <id>', 'only this node (repeatable)', collect(String))
    .requiredOption(
      '--wave <spec>',
      'a wave, in order (repeatable): PERCENT% of the group or a COUNT of nodes, optionally :SOAK ' +
        '(e.g. 10%, 5, 100%:1h); the last wave takes every node left',
      collect(parseWave),
    )
    .option('--soak <duration>', 'soak time of waves that do not name their own (default 0)', parseDuration)
    .requiredOption(
      '--success <share>',
      'share of a wave that must succeed before the next starts (0.9 or 90%)',
      parseShare,
    )
    .requiredOption(
      '--failure <share>',
      'share of a wave that, once failed, pauses the rollout (0.2 or 20%)',
      parseShare,
    )
    .requiredOption(
      '--max-attestation-age <duration>',
      "how old a node's last passing attestation may be when it is admitted (seconds, or 10m, 1h)",
      parseDuration,
    )
    .option(
      '--deadline <duration>',
      'time a node gets from admission to proven success (server default 1h)',
      parseDuration,
    )
    .option('--window <HH:MM-HH:MM>', 'admit nodes only inside this UTC window', parseWindow)
    .option('--max-concurrent <n>', 'at most this many nodes updating at once', parsePositiveInteger)
    .option('--name <name>', 'a name for people (default: "<hardware> <version>")')
    .option('--start', 'start it right away')
    .option('--json', 'print the rollout as JSON')
    .action((opts: CreateOptions, command: Command) => createRollout(ctx, command, opts));

  rollout
    .command('list')
    .description('rollouts with state, current wave and how many nodes succeeded')
    .option('--json', 'print as JSON')
    .action(async (opts: { json?: boolean }) => {
      const rollouts = await rolloutsClient(ctx).listRollouts();
      if (opts.json) {
        writeJson(ctx, { rollouts });
        return;
      }
      if (rollouts.length === 0) {
        ctx.stderr.write('no rollouts\n');
        return;
      }
      ctx.stdout.write(
        renderTable(
          ['ID', 'NAME', 'HARDWARE', 'VERSION', 'STATE', 'WAVE', 'SUCCEEDED', 'FAILED', 'CREATED'],
          rollouts.map((r) => {
            const total = totals(r);
            return [
              r.id,
              r.name,
              r.hardwareId,
              r.version,
              r.state,
              waveOf(r),
              `${total.succeeded}/${total.size}`,
              String(total.failed),
              formatTimestamp(r.createdAt),
            ];
          }),
        ),
      );
    });

  rollout
    .command('show')
    .description('one rollout: state and its reason, settings, and progress wave by wave')
    .argument('<id>', 'rollout id, from `otter rollout list`')
    .option('--json', 'print as JSON (waves numbered from 0)')
    .action(async (id: string, opts: { json?: boolean }) => {
      const r = await rolloutsClient(ctx).getRollout(id);
      if (opts.json) writeJson(ctx, r);
      else ctx.stdout.write(describeRollout(r));
    });

  rollout
    .command('watch')
    .description("the rollout's waves and nodes updating live (progress bars on a terminal) until it ends")
    .argument('<id>', 'rollout id')
    .action((id: string) => watchRollout(ctx, id));

  rollout
    .command('nodes')
    .description("the rollout's nodes: wave, state, the version they came from, and why")
    .argument('<id>', 'rollout id')
    .option('--json', 'print as JSON (waves numbered from 0)')
    .action(async (id: string, opts: { json?: boolean }) => {
      const nodes = await rolloutsClient(ctx).rolloutNodes(id);
      if (opts.json) {
        writeJson(ctx, { nodes });
        return;
      }
      if (nodes.length === 0) {
        ctx.stderr.write('no nodes (a draft takes its nodes when it starts)\n');
        return;
      }
      ctx.stdout.write(
        renderTable(
          ['NODE', 'WAVE', 'STATE', 'FROM', 'UPDATED', 'REASON'],
          nodes.map((n: RolloutNodeDto) => [
            n.nodeId,
            String(n.wave + 1),
            n.state,
            n.fromVersion ?? '-',
            formatTimestamp(n.updatedAt),
            n.reason ?? '',
          ]),
        ),
      );
    });

  const transition = (
    name: string,
    description: string,
    call: (c: RolloutsClient, id: string, reason: string) => Promise<RolloutDto>,
    withReason: boolean,
  ): void => {
    const command = rollout.command(name).description(description).argument('<id>', 'rollout id');
    if (withReason) command.option('--reason <text>', 'why; shown with the state', NO_REASON);
    command.action(async (id: string, opts: { reason?: string }) => {
      ctx.stdout.write(stateLine(await call(rolloutsClient(ctx), id, opts.reason ?? NO_REASON)));
    });
  };
  transition(
    'start',
    'start a draft: takes its nodes and splits them into waves',
    (c, id) => c.startRollout(id),
    false,
  );
  transition(
    'pause',
    'stop admitting nodes; nodes already updating carry on',
    (c, id, why) => c.pauseRollout(id, why),
    true,
  );
  transition(
    'resume',
    'resume a paused rollout (it pauses again while its failure threshold still holds)',
    (c, id) => c.resumeRollout(id),
    false,
  );
  transition(
    'abort',
    'end the rollout: nodes not yet updated go back to their release, updated nodes keep the new one',
    (c, id, why) => c.abortRollout(id, why),
    true,
  );

  rollout
    .command('exclude')
    .description("take a node out of the rollout and its wave's numbers (say, one with a broken board)")
    .argument('<id>', 'rollout id')
    .argument('<node>', 'node id, from `otter rollout nodes`')
    .requiredOption('--reason <text>', 'why')
    .action(async (id: string, nodeId: string, opts: { reason: string }) => {
      const node = await rolloutsClient(ctx).excludeNode(id, nodeId, opts.reason);
      ctx.stdout.write(
        terminalText`${node.nodeId}: ${node.state}${node.reason ? ` (${terminalSafe(node.reason)})` : ''}\n`,
      );
    });
}

async function createRollout(ctx: CliContext, command: Command, opts: CreateOptions): Promise<void> {
  if (!HARDWARE_ID_PATTERN.test(opts.hardware)) {
    usageError(
      command,
      `--hardware ${JSON.stringify(opts.hardware)} is not a hardware id (lowercase, digits, . _ -)`,
    );
  }
  const labels = checkUsage(command, () => labelSet(opts.label ?? []));
  const request: CreateRolloutRequest = {
    name: opts.name ?? `${opts.hardware} ${opts.version}`,
    hardwareId: opts.hardware,
    version: opts.version,
    selector: {
      ...(Object.keys(labels).length > 0 && { labels }),
      ...(opts.node && { nodes: [...new Set(opts.node)] }),
    },
    waves: completeWaves(opts.wave, opts.soak),
    successThreshold: opts.success,
    failureThreshold: opts.failure,
    maxAttestationAgeSeconds: opts.maxAttestationAge,
    ...(opts.deadline !== undefined && { nodeDeadlineSeconds: opts.deadline }),
    ...(opts.window && { maintenanceWindow: opts.window }),
    ...(opts.maxConcurrent !== undefined && { maxConcurrent: opts.maxConcurrent }),
  };
  const client = rolloutsClient(ctx);
  let rollout = await client.createRollout(request);
  if (opts.start) {
    try {
      rollout = await client.startRollout(rollout.id);
    } catch (e) {
      ctx.stderr.write(`rollout ${rollout.id} was created but not started; it stays a draft\n`);
      throw e;
    }
  }
  if (opts.json) writeJson(ctx, rollout);
  else ctx.stdout.write(stateLine(rollout));
}

function stateLine(r: RolloutDto): string {
  return `${terminalSafe(r.id)}: ${r.state}${r.stateReason ? ` (${terminalSafe(r.stateReason)})` : ''}\n`;
}

function totals(r: RolloutDto): { size: number; succeeded: number; failed: number } {
  return r.progress.reduce(
    (sum, w) => ({
      size: sum.size + w.size,
      succeeded: sum.succeeded + w.succeeded,
      failed: sum.failed + w.failed,
    }),
    { size: 0, succeeded: 0, failed: 0 },
  );
}

function waveOf(r: RolloutDto): string {
  return r.state === 'draft' ? '-' : `${Math.min(r.currentWave + 1, r.waves.length)}/${r.waves.length}`;
}

function waveTarget(w: WaveSpec): string {
  return w.percent !== undefined ? `${w.percent}%` : `${w.count} node${w.count === 1 ? '' : 's'}`;
}

const share = (fraction: number): string => `${Math.round(fraction * 1000) / 10}%`;

/** What `otter rollout show` prints: the settings as `field: value` lines, then the per-wave table. */
export function describeRollout(r: RolloutDto): string {
  const selector = [
    ...Object.entries(r.selector.labels ?? {}).map(([k, v]) => `${k}=${v}`),
    ...(r.selector.nodes ? [`${r.selector.nodes.length} listed node(s)`] : []),
  ];
  const fields: Array<[string, string]> = [
    ['id', r.id],
    ['name', r.name],
    ['release', `${r.hardwareId} ${r.version}`],
    ['state', r.state],
    ['reason', r.stateReason ?? '-'],
    [
      'wave',
      r.state === 'draft'
        ? `- of ${r.waves.length}`
        : `${waveOf(r).replace('/', ' of ')}${r.waveStartedAt ? `, started ${formatTimestamp(r.waveStartedAt)}` : ''}`,
    ],
    [
      'nodes',
      selector.length > 0
        ? `active ${r.hardwareId} nodes with ${selector.join(', ')}`
        : `every active ${r.hardwareId} node`,
    ],
    ['thresholds', `success ${share(r.successThreshold)}, failure ${share(r.failureThreshold)}`],
    ['attestation', `at most ${formatDuration(r.maxAttestationAgeSeconds)} old`],
    ['deadline', `${formatDuration(r.nodeDeadlineSeconds)} per node`],
    [
      'window',
      r.maintenanceWindow ? `${r.maintenanceWindow.start}-${r.maintenanceWindow.end} UTC` : 'any time',
    ],
    ['concurrency', r.maxConcurrent === null ? 'unlimited' : `at most ${r.maxConcurrent} updating`],
    ['created', `${formatTimestamp(r.createdAt)} by ${r.createdBy}`],
    ['started', r.startedAt ? formatTimestamp(r.startedAt) : '-'],
    ['finished', r.finishedAt ? formatTimestamp(r.finishedAt) : '-'],
  ];
  const width = Math.max(...fields.map(([name]) => name.length)) + 1;
  // Values come from the server, the reason and name from people or nodes: one line each, escaped.
  const head = fields
    .map(([name, value]) => `${`${name}:`.padEnd(width)}  ${terminalSafe(value)}`)
    .join('\n');
  const table = renderTable(
    [
      'WAVE',
      'TARGET',
      'SOAK',
      'SIZE',
      'PENDING',
      'IN PROGRESS',
      'SUCCEEDED',
      'FAILED',
      'QUARANTINED',
      'EXCLUDED',
    ],
    r.waves.map((w, i) => {
      const p = r.progress[i];
      const n = (value: number | undefined): string => String(value ?? 0);
      return [
        String(i + 1),
        waveTarget(w),
        formatDuration(w.soakSeconds),
        n(p?.size),
        n(p?.pending),
        n(p?.inProgress),
        n(p?.succeeded),
        n(p?.failed),
        n(p?.quarantined),
        n(p?.excluded),
      ];
    }),
  );
  return `${head}\n\n${table}`;
}
