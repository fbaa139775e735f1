import { InvalidArgumentError, Option, type Command } from 'commander';
import { AuditClient, resolveClientSettings } from '#otter/api-client';
import { AUDIT_ACTIONS, AUDIT_PAGE_MAX, type AuditEntryDto } from '#otter/contracts';
import { processCliContext, writeJson, type CliContext } from '../cli-context.js';
import { formatTimestamp, renderTable } from '../output.js';
import { exitWithUsageCode } from '../usage-errors.js';
import { parseDuration } from './rollout-args.js';

export interface AuditListOptions {
  actor?: string;
  action?: string;
  target?: string;
  /** An ISO time, already resolved from a duration. */
  since?: string;
  limit: number;
  json?: boolean;
}

export function registerAuditCommands(program: Command, ctx: CliContext = processCliContext()): void {
  const audit = exitWithUsageCode(
    program.command('audit').description('the audit log: who changed what, and refused attempts (admin)'),
  );
  audit
    .command('list')
    .description('audit entries, newest first')
    .option('--actor <token>', 'only this token (its id or name)')
    .addOption(new Option('--action <action>', 'only this action').choices(AUDIT_ACTIONS))
    .option('--target <kind[:id]>', 'only this target, e.g. node:<id> or rollout')
    .option(
      '--since <when>',
      'only entries since a time (ISO 8601) or for a duration back (30m, 12h, 7d)',
      (v) => parseSince(v, new Date()),
    )
    .option('--limit <n>', `at most this many entries (1-${AUDIT_PAGE_MAX})`, parseLimit, 50)
    .option('--json', 'print as JSON')
    .action((opts: AuditListOptions) => listAudit(ctx, opts));
}

export async function listAudit(ctx: CliContext, opts: AuditListOptions): Promise<void> {
  const page = await new AuditClient(resolveClientSettings(ctx.env, ctx.cwd)).listAudit({
    actor: opts.actor,
    action: opts.action,
    target: opts.target,
    from: opts.since,
    limit: opts.limit,
  });
  if (opts.json) {
    writeJson(ctx, page);
    return;
  }
  if (page.entries.length === 0) {
    ctx.stderr.write('no audit entries\n');
    return;
  }
  // ctx's streams escape terminal controls: names, labels and reasons in entries come from other people.
  ctx.stdout.write(
    renderTable(
      ['ID', 'TIME', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME', 'SOURCE', 'CHANGES'],
      page.entries.map((e) => [
        String(e.id),
        formatTimestamp(e.at),
        actorLabel(e),
        e.action,
        e.target.id === null ? e.target.kind : `${e.target.kind}:${e.target.id}`,
        e.outcome,
        e.source ?? '-',
        Object.keys(e.changes).length > 0 ? JSON.stringify(e.changes) : '-',
      ]),
    ),
  );
  if (page.nextCursor !== null) ctx.stderr.write('more entries: raise --limit or narrow --since\n');
}

function actorLabel(e: AuditEntryDto): string {
  return e.actor === null ? '(no valid token)' : `${e.actor.name} (${e.actor.role})`;
}

/** `--since`: an ISO time as given, or a duration back from `now` (`30m`, `12h`, `7d`). */
export function parseSince(since: string, now: Date): string {
  if (/^\d/.test(since) && !since.includes('-')) {
    return new Date(now.getTime() - parseDuration(since) * 1000).toISOString();
  }
  if (Number.isNaN(Date.parse(since))) {
    throw new InvalidArgumentError(
      'expected an ISO 8601 time (2026-12-01T00:00:00Z) or a duration (30m, 12h, 7d)',
    );
  }
  return since;
}

function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > AUDIT_PAGE_MAX) {
    throw new InvalidArgumentError(`expected a whole number from 1 to ${AUDIT_PAGE_MAX}`);
  }
  return n;
}
