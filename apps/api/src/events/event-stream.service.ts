import type { ServerResponse } from 'node:http';
import { Inject, Injectable, Logger, type BeforeApplicationShutdown } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { STREAM_RESET_EVENT, eventMatches, type StreamedEventDto } from '#otter/contracts';
import { OtterError } from '#otter/errors';
import { EventReader, compareIds } from '#otter/events';

/** What one client asked GET /api/v1/events for. */
export interface EventStreamRequest {
  filter: { kinds: string[]; rolloutId?: string; nodeId?: string; hardwareId?: string };
  /** Resume after this stream id (`0-0`: from the oldest event held); none: only events from now on. */
  lastEventId?: string;
  /** false: send what the stream holds and end. */
  follow: boolean;
}

/** A client that reads slower than events arrive is cut off past this much unsent data, never buffered forever. */
const MAX_UNSENT_BYTES = 8 * 1024 * 1024;
const PAGE = 1000;

/**
 * The SSE frame of an event, made once per event and process: the shared reader hands the same objects to
 * every client, so 100 clients cost one JSON.stringify per event, not 100.
 */
const frames = new WeakMap<StreamedEventDto, string>();
function frame(streamed: StreamedEventDto): string {
  let text = frames.get(streamed);
  if (text === undefined) {
    text = `id: ${streamed.id}\nevent: ${streamed.event.kind}\ndata: ${JSON.stringify(streamed.event)}\n\n`;
    frames.set(streamed, text);
  }
  return text;
}

/**
 * Serves the event stream as server-sent events: `id:` the stream id, `event:` the kind, `data:` the event's
 * JSON. A resuming client first gets what it missed (from the stream, in pages), then the live events the
 * process's one shared reader fans out; both pass one cursor, so nothing is sent twice or skipped.
 */
@Injectable()
export class EventStreamService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(EventStreamService.name);
  private readonly open = new Set<() => void>();

  constructor(
    private readonly reader: EventReader,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  /** Open streams right now. */
  get openStreams(): number {
    return this.open.size;
  }

  /**
   * Writes the stream until the client goes away (or, not following, until caught up). Throws before taking the
   * response (`take`) when Redis cannot be read, so the client gets a 503 rather than an empty stream.
   */
  async serve(request: EventStreamRequest, take: () => ServerResponse): Promise<void> {
    let caughtUp = false;
    const pending: StreamedEventDto[] = [];
    let cursor = request.lastEventId;
    let closed = false;
    // Every batch passes the cursor, live ones too: the shared tail can lag behind this client's catch-up read
    // (its XREAD reply still on the way while `range` already returned the same events), so a live batch after
    // the catch-up may repeat what was just sent.
    const send = (batch: readonly StreamedEventDto[]): void => {
      let text = '';
      for (const streamed of batch) {
        const { id, event } = streamed;
        if (cursor !== undefined && compareIds(id, cursor) <= 0) continue;
        cursor = id;
        if (eventMatches(event, request.filter)) text += frame(streamed);
      }
      if (text) write(text);
    };
    const write = (text: string): void => {
      if (closed) return;
      raw.write(text);
      if (raw.writableLength > MAX_UNSENT_BYTES) {
        this.logger.warn({ unsent: raw.writableLength }, 'event stream client too slow: disconnected');
        raw.destroy();
      }
    };

    let unsubscribe: (() => void) | undefined;
    let reset: { oldestId?: string } | undefined;
    try {
      if (request.follow)
        unsubscribe = await this.reader.subscribe((batch) =>
          caughtUp ? send(batch) : pending.push(...batch),
        );
      if (request.lastEventId !== undefined && request.lastEventId !== '0-0') {
        const point = await this.reader.resumePoint(request.lastEventId);
        if (point.reset) reset = { oldestId: point.oldestId };
      }
    } catch (e) {
      unsubscribe?.();
      this.logger.warn(`event stream unavailable: ${e instanceof Error ? e.message : String(e)}`);
      throw new OtterError('EVENTS_UNAVAILABLE', 'the event stream cannot be read right now; retry');
    }

    const raw = take();
    const close = (): void => {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      unsubscribe?.();
      this.open.delete(close);
      if (!raw.writableEnded) raw.end();
    };
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      // Proxies that buffer (nginx) would hold events back.
      'x-accel-buffering': 'no',
    });
    raw.write(`retry: 3000\n\n`);
    const heartbeat = setInterval(() => write(': heartbeat\n\n'), this.config.events.heartbeatSeconds * 1000);
    this.open.add(close);
    raw.once('close', close);

    try {
      if (reset) {
        const data = { lastEventId: request.lastEventId, oldestId: reset.oldestId ?? null };
        write(`event: ${STREAM_RESET_EVENT}\ndata: ${JSON.stringify(data)}\n\n`);
        cursor = '0-0';
      }
      if (cursor === undefined && !request.follow) cursor = '0-0';
      if (cursor !== undefined) {
        for (;;) {
          const page = await this.reader.range(cursor, PAGE);
          send(page);
          if (page.length < PAGE || closed) break;
        }
      }
    } catch (e) {
      this.logger.warn(`event stream catch-up failed: ${e instanceof Error ? e.message : String(e)}`);
      close();
      return;
    }
    caughtUp = true;
    send(pending.splice(0));
    if (!request.follow) close();
  }

  /** Open streams would keep the HTTP server from closing: end them first. */
  beforeApplicationShutdown(): void {
    for (const close of [...this.open]) close();
  }
}
