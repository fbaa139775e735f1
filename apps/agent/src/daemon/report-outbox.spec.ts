import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { UpdateReport } from '#otter/contracts';
import { ReportOutbox } from './report-outbox.js';

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
    await expect(outbox.flush(send)).rejects.toThrow('server down');
    expect(sent).toEqual(['booted']);

    fail = false;
    await new ReportOutbox(dir).flush(send);
    expect(sent).toEqual(['booted', 'attested', 'committed']);
    await new ReportOutbox(dir).flush(send);
    expect(sent).toHaveLength(3);
  });
});
