import { SingleBar } from 'cli-progress';
import { formatBytes } from './output.js';

/** A progress bar for an upload on a TTY: bytes, percent, rate and ETA. */
export class UploadProgress {
  private readonly bar: SingleBar;
  private started = false;
  private startedAt = 0;

  constructor(stream: NodeJS.WritableStream) {
    this.bar = new SingleBar({
      stream,
      format: 'uploading [{bar}] {percentage}% | {sent} / {size} | {rate} | ETA {eta_formatted}',
      barsize: 30,
      // A hidden cursor would stay hidden after Ctrl-C (cli-progress restores it only via its own SIGINT handler,
      // which would also stop Ctrl-C from ending the upload).
      hideCursor: false,
      etaBuffer: 50,
    });
  }

  /** Matches the client's onProgress(bytesSent, totalBytes). */
  readonly update = (sent: number, total: number): void => {
    if (!this.started) {
      this.started = true;
      this.startedAt = Date.now();
      this.bar.start(total, 0, this.payload(0, total));
    }
    this.bar.update(sent, this.payload(sent, total));
  };

  stop(): void {
    if (this.started) this.bar.stop();
  }

  private payload(sent: number, total: number): Record<string, string> {
    const seconds = (Date.now() - this.startedAt) / 1000;
    return {
      sent: formatBytes(sent),
      size: formatBytes(total),
      rate: seconds > 0 ? `${formatBytes(sent / seconds)}/s` : '-',
    };
  }
}
