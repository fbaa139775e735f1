import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds (user + system, all threads) a process has used, from /proc; undefined off Linux. Read in
 * nanoseconds from each thread's schedstat where the kernel keeps it (a round of a few hundred milliseconds of
 * CPU measured in the 10 ms ticks of /proc/PID/stat would carry a few per cent of rounding), else in ticks.
 * @param {number} pid
 * @returns {number | undefined}
 */
export function processCpuSeconds(pid) {
  return threadsSchedstatSeconds(pid) ?? statSeconds(pid);
}

function threadsSchedstatSeconds(pid) {
  try {
    let ns = 0;
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // A thread that ended between the listing and the read.
      }
    }
    // 0: schedstat not kept by this kernel.
    return ns > 0 ? ns / 1e9 : undefined;
  } catch {
    return undefined;
  }
}

function statSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return undefined;
  }
}
