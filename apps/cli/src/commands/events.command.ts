import { InvalidArgumentError, type Command } from 'commander';
import { EventsClient, resolveClientSettings } from '#otter/api-client';
import { STREAM_ID_PATTERN, isKindPattern } from '#otter/contracts';
import { processCliContext, type CliContext } from '../cli-context.js';
import { eventLine } from '../event-lines.js';
import { terminalText } from '../terminal-text.js';
import { exitWithUsageCode } from '../usage-errors.js';
import { collect } from './rollout-args.js';

interface EventsOptions {
  follow?: boolean;
  kind?: string[];
  rollout?: string;
  node?: string;
  hardware?: string;
  after?: string;
  json?: boolean;
}

export function eventsClient(ctx: CliContext): EventsClient {
  return new EventsClient(resolveClientSettings(ctx.env, ctx.cwd));
}

/** A --kind value: a kind or a `prefix.*` the vocabulary has (docs/events.md). */
function parseKind(value: string): string {
  if (!isKindPattern(value)) throw new InvalidArgumentError(`no event kind ${value} (see docs/events.md)`);
  return value;
}

function parseStreamId(value: string): string {
  if (!STREAM_ID_PATTERN.test(value)) throw new InvalidArgumentError('a stream id like 1765000000000-0');
  return value;
}

export function registerEventsCommands(program: Command, ctx: CliContext = processCliContext()): void {
  exitWithUsageCode(
    program
      .command('events')
      .description(
        'print Otter events, one line each: what the stream still holds, or (--follow) live until Ctrl-C',
      )
      .option('--follow', 'keep printing new events as they happen')
      .option('--kind <kind>', 'only this kind, or a prefix like rollout.* (repeatable)', collect(parseKind))
      .option('--rollout <id>', 'only events of this rollout')
      .option('--node <id>', 'only events of this node')
      .option('--hardware <id>', 'only events of this hardware id')
      .option('--after <id>', 'start after this stream id (what --json prints as id)', parseStreamId)
      .option('--json', 'one JSON object per line: {"id": ..., "event": {...}}')
      .action(async (options: EventsOptions) => {
        const client = eventsClient(ctx);
        const stream = client.events({
          follow: options.follow ?? false,
          kinds: options.kind,
          rolloutId: options.rollout,
          nodeId: options.node,
          hardwareId: options.hardware,
          // Without --follow: everything the stream still holds (after --after).
          lastEventId: options.after ?? (options.follow ? undefined : '0-0'),
        });
        for await (const message of stream) {
          if (message.type === 'reset') {
            ctx.stderr.write(
              terminalText`warning: events after ${message.lastEventId} are past the retention window; continuing from the oldest held (${message.oldestId ?? 'none'})\n`,
            );
            continue;
          }
          if (options.json) ctx.stdout.write(`${JSON.stringify({ id: message.id, event: message.event })}\n`);
          else ctx.stdout.write(eventLine(message.event));
        }
      }),
  );
}
