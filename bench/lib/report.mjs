import { availableParallelism, loadavg } from 'node:os';

/**
 * Rows of cells as aligned text lines: the first column left-aligned, the others right-aligned, a rule
 * under the header row.
 * @param {string[][]} rows
 */
export function table(rows) {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row) =>
    row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)];
}

/**
 * Warns when the machine is already busy (load average above a quarter of its cores); returns the load
 * averages read.
 * @param {(message: string) => void} log
 * @param {string} skewed what the other work skews ("the ratios", "the times")
 */
export function warnIfBusy(log, skewed) {
  const load = loadavg();
  if (load[0] > availableParallelism() / 4) {
    log(
      `warning: load average ${load[0].toFixed(2)} on ${availableParallelism()} cores: other work skews ${skewed}`,
    );
  }
  return load;
}

/**
 * Runs a bench's main, logs a failure (exit 1; a bench never fails because of a ratio), runs its cleanup
 * either way, and exits.
 * @param {() => Promise<void>} main
 * @param {(message: string) => void} log
 * @param {() => Promise<void>} [cleanup]
 */
export async function runBench(main, log, cleanup) {
  let exitCode = 0;
  try {
    await main();
  } catch (error) {
    log(`failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    exitCode = 1;
  } finally {
    await cleanup?.();
  }
  process.exit(exitCode);
}
