import { Writable } from 'node:stream';

/**
 * Text the CLI prints comes partly from devices (report events and details, verdict reasons, update details):
 * a node could send escape sequences that clear an operator's screen, retitle the window, rewrite what is
 * already shown (`\r`), or hide text from the eye. Every character a terminal acts on instead of printing is
 * shown escaped: C0 controls, DEL, C1 controls (ESC and CSI start every ANSI sequence), the Unicode line
 * and paragraph separators and the bidirectional formatting characters.
 */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const SHORT: Record<string, string> = { '\t': '\\t', '\n': '\\n', '\r': '\\r' };

function escapeOne(c: string): string {
  return SHORT[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/** One value as it may reach a terminal: `\x1b[2J` becomes the visible text `\u001b[2J`, a line feed `\n`. */
export function terminalSafe(value: string): string {
  return value.replace(UNSAFE, escapeOne);
}

/**
 * A whole block of output whose line feeds are its own. JSON text needs this: JSON.stringify escapes C0
 * controls inside strings but leaves DEL, C1 controls and the Unicode format characters as they are; the
 * `\uXXXX` written instead is still valid JSON for the same value.
 */
export function terminalSafeLines(text: string): string {
  return text.split('\n').map(terminalSafe).join('\n');
}

/**
 * A template for a line of output: every interpolated value goes through terminalSafe, the literal parts
 * (the CLI's own words and line feeds) stay as written. `` terminalText`${id}: ${state}\n` ``.
 */
export function terminalText(strings: TemplateStringsArray, ...values: unknown[]): string {
  return strings.reduce(
    (out, literal, i) => out + literal + (i < values.length ? terminalSafe(String(values[i])) : ''),
    '',
  );
}

/**
 * A stream that passes on everything written to it through terminalSafeLines: what every command prints goes
 * through it (createProgram wraps the context's stdout and stderr), so output no command escaped itself, such
 * as a server's error message, still reaches the terminal inert. Writes are forwarded synchronously, in order.
 */
export class TerminalSafeStream extends Writable {
  constructor(readonly raw: NodeJS.WritableStream & { isTTY?: boolean }) {
    super({ decodeStrings: false });
  }

  /** Whether the stream underneath is a terminal (where a progress bar is drawn). */
  get isTTY(): boolean {
    return this.raw.isTTY === true;
  }

  override _write(chunk: string | Buffer, _encoding: BufferEncoding, done: (error?: Error) => void): void {
    this.raw.write(terminalSafeLines(typeof chunk === 'string' ? chunk : chunk.toString('utf8')));
    done();
  }
}

/** `stream` with everything written to it made terminal-safe (the same stream when it already is). */
export function terminalSafeStream(stream: NodeJS.WritableStream & { isTTY?: boolean }): TerminalSafeStream {
  return stream instanceof TerminalSafeStream ? stream : new TerminalSafeStream(stream);
}

/**
 * The stream underneath: for the one writer whose control sequences are its own, the upload progress bar,
 * which moves the cursor to redraw itself.
 */
export function rawStream(
  stream: NodeJS.WritableStream & { isTTY?: boolean },
): NodeJS.WritableStream & { isTTY?: boolean } {
  return stream instanceof TerminalSafeStream ? stream.raw : stream;
}
