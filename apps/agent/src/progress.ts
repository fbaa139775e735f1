import cliProgress from 'cli-progress';

export interface ProgressReporter {
  update(progress: { received: number; total: number }): void;
  stop(): void;
}

const MIB = 1024 * 1024;
const mib = (bytes: number): string => (bytes / MIB).toFixed(1);

/** A progress bar on stderr when it is a terminal; nothing otherwise (logs and pipes stay clean). */
export function createProgressReporter(
  label: string,
  stream: NodeJS.WriteStream = process.stderr,
): ProgressReporter {
  if (!stream.isTTY) return { update: () => undefined, stop: () => undefined };
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} [{bar}] {percentage}% {done}/{size} MiB`,
      clearOnComplete: true,
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update({ received, total }) {
      const payload = { done: mib(received), size: mib(total) };
      if (!started) {
        bar.start(total, received, payload);
        started = true;
      } else {
        bar.update(received, payload);
      }
    },
    stop() {
      if (started) bar.stop();
      started = false;
    },
  };
}
