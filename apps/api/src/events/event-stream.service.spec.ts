import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '#otter/config';
import type { StreamedEventDto } from '#otter/contracts';
import type { EventBatchListener, EventReader } from '#otter/events';
import { EventStreamService } from './event-stream.service.js';

const HW = 'hw-a';
const released = (id: string, version: string): StreamedEventDto => ({
  id,
  event: {
    kind: 'release.published',
    at: '2026-12-08T00:00:00.000Z',
    hardwareId: HW,
    version,
  } as unknown as StreamedEventDto['event'],
});

/** A response that records what was written. */
function response(): { res: ServerResponse; text: () => string } {
  const sink = new PassThrough();
  let written = '';
  sink.on('data', (c: Buffer) => (written += c.toString()));
  const res = Object.assign(sink, { writeHead: () => res }) as unknown as ServerResponse;
  return { res, text: () => written };
}

describe('EventStreamService', () => {
  it('sends an event once when the shared tail delivers it after the catch-up read already did', async () => {
    const e1 = released('1-0', '1.0.0');
    const e2 = released('2-0', '2.0.0');
    const e3 = released('3-0', '3.0.0');
    let live: EventBatchListener | undefined;
    // The tail's XREAD reply for e2 is still on the way when the client's catch-up range already returns it.
    const reader = {
      subscribe: async (listener: EventBatchListener) => {
        live = listener;
        return () => undefined;
      },
      resumePoint: async () => ({ reset: false }),
      range: async (after: string) => (after === '1-0' ? [e2] : []),
    } as unknown as EventReader;
    const service = new EventStreamService(
      reader,
      loadConfig({ OTTER_DATA_DIR: '/tmp/otter-event-stream-spec' }),
    );
    const { res, text } = response();

    await service.serve({ filter: { kinds: [] }, lastEventId: e1.id, follow: true }, () => res);
    live!([e2, e3]);

    const ids = [...text().matchAll(/^id: (.+)$/gm)].map((m) => m[1]);
    expect(ids).toEqual(['2-0', '3-0']);
    service.beforeApplicationShutdown();
  });
});
