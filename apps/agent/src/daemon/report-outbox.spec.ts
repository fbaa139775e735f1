import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiError, ApiUnreachableError } from '#otter/api-client';
import type { UpdateReport } from '#otter/contracts';
import { ReportOutbox } from './report-outbox.js';

const noDrop = (): void => {
  throw new Error('nothing should be dropped');
};
const report = (step: UpdateReport['step']): UpdateReport => ({ step, version: '2.0.0', at: `t-${step}` });

describe('ReportOutbox', () => {
  it('sends waiting reports in order, keeps the rest after a failure, and survives a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-outbox-'));
    const outbox = new ReportOutbox(dir);
    for (const step of ['booted', 'attested', 'committed'] as const) await outbox.add(report(step));

    const sent: string[] = [];
    let fail = true;
    const send = async (r: UpdateReport): Promise<void> => {
      if (r.step === 'attested' && fail) throw new Error('server down');
      sent.push(r.step);
    };
    await expect(outbox.flush(send, noDrop)).rejects.toThrow('server down');
    expect(sent).toEqual(['booted']);

    fail = false;
    await new ReportOutbox(dir).flush(send, noDrop);
    expect(sent).toEqual(['booted', 'attested', 'committed']);
    await new ReportOutbox(dir).flush(send, noDrop);
    expect(sent).toHaveLength(3);
  });

  it('drops a report Otter refused for what it says and sends the ones behind it; keeps one refused for now', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'otter-outbox-'));
    const outbox = new ReportOutbox(dir);
    for (const step of ['booted', 'attested', 'committed'] as const) await outbox.add(report(step));

    const sent: string[] = [];
    const dropped: string[] = [];
    let answer: Error | undefined = new ApiError(401, 'UNAUTHENTICATED', 'token expired');
    const send = async (r: UpdateReport): Promise<void> => {
      if (r.step === 'booted') throw new ApiError(400, 'VALIDATION', 'bytes: there is no release 2.0.0');
      if (r.step === 'attested' && answer) throw answer;
      sent.push(r.step);
    };
    const drop = (r: UpdateReport): void => void dropped.push(r.step);

    // 401 (a token to renew), 429 and an unreachable server all pass: the report waits.
    await expect(outbox.flush(send, drop)).rejects.toMatchObject({ status: 401 });
    answer = new ApiError(429, 'RATE_LIMITED', 'slow down');
    await expect(outbox.flush(send, drop)).rejects.toMatchObject({ status: 429 });
    answer = new ApiUnreachableError('connection refused');
    await expect(outbox.flush(send, drop)).rejects.toThrow('connection refused');
    expect(dropped).toEqual(['booted']);
    expect(sent).toEqual([]);

    answer = undefined;
    await outbox.flush(send, drop);
    expect(sent).toEqual(['attested', 'committed']);
    expect(dropped).toEqual(['booted']);
  });
});
