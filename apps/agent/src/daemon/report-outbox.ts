import { appendFile, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { UpdateReport } from '#otter/contracts';
import { isPermanentRefusal } from './permanent-refusal.js';

/** What the outbox says of a report it gave up on. */
export type DroppedReportLog = (report: UpdateReport, error: unknown) => void;

/**
 * Update reports that could not be sent yet (`<state-dir>/outbox.jsonl`), sent first, in order, at the next
 * poll. A committed node whose "committed" report was lost while the server was down would otherwise wait
 * past its deadline and be counted as failed.
 */
export class ReportOutbox {
  private readonly file: string;

  constructor(stateDir: string) {
    this.file = join(stateDir, 'outbox.jsonl');
  }

  async add(report: UpdateReport): Promise<void> {
    await appendFile(this.file, `${JSON.stringify(report)}\n`, { mode: 0o600 });
  }

  /**
   * Sends what is waiting, oldest first; stops at the first failure that may pass and keeps the rest. A
   * report Otter refused for what it says (a 4xx that no retry can change) is dropped and logged: kept, it
   * would be sent and refused at every poll for ever, and hold back every report behind it.
   */
  async flush(send: (report: UpdateReport) => Promise<void>, dropped: DroppedReportLog): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    const reports = text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as UpdateReport);
    for (let i = 0; i < reports.length; i++) {
      try {
        await send(reports[i]!);
      } catch (error) {
        if (isPermanentRefusal(error)) {
          dropped(reports[i]!, error);
          continue;
        }
        const rest = reports
          .slice(i)
          .map((r) => `${JSON.stringify(r)}\n`)
          .join('');
        const tmp = `${this.file}.${process.pid}.tmp`;
        await appendFile(tmp, rest, { mode: 0o600 });
        await rename(tmp, this.file);
        throw error;
      }
    }
    await rm(this.file, { force: true });
  }
}
