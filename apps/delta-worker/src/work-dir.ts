import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Logger } from '@nestjs/common';

/**
 * The worker's scratch space: `<data dir>/delta-work/<pid>-<random>/`, one directory per process. Images and
 * patches are staged here, never in memory. At start a worker removes the directories of workers that are
 * no longer running (a killed worker cleans nothing up itself); directories of live processes stay.
 */
export class WorkDir {
  private static readonly logger = new Logger('DeltaWorkDir');

  private constructor(readonly path: string) {}

  static async create(dataDir: string): Promise<WorkDir> {
    const root = join(dataDir, 'delta-work');
    await mkdir(root, { recursive: true, mode: 0o700 });
    for (const entry of await readdir(root)) {
      const pid = Number(/^(\d+)-[0-9a-f]+$/.exec(entry)?.[1]);
      if (Number.isInteger(pid) && pid !== process.pid && !isRunning(pid)) {
        await rm(join(root, entry), { recursive: true, force: true });
        WorkDir.logger.log(`removed the scratch directory of stopped worker ${pid}`);
      }
    }
    const path = join(root, `${process.pid}-${randomBytes(4).toString('hex')}`);
    await mkdir(path, { mode: 0o700 });
    return new WorkDir(path);
  }

  /** A fresh directory for one job; the caller removes it. */
  scratch(): Promise<string> {
    return mkdtemp(join(this.path, 'job-'));
  }

  async remove(): Promise<void> {
    await rm(this.path, { recursive: true, force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
