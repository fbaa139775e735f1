import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The `//` comment block at the top of a script (after its shebang), as its --help text.
 * @param {string} scriptUrl the script's import.meta.url
 */
export function headerHelp(scriptUrl) {
  const lines = readFileSync(fileURLToPath(scriptUrl), 'utf8').split('\n').slice(1);
  const end = lines.findIndex((l) => !l.startsWith('//'));
  return `${lines
    .slice(0, end)
    .map((l) => l.slice(3))
    .join('\n')}\n`;
}

/**
 * A bench's command line: prints `help` and exits 0 on --help or -h, exits 2 on any argument that is not
 * one of `flags`; returns the flags given.
 * @param {(message: string) => void} log
 * @param {string} help
 * @param {string[]} [flags]
 * @returns {Set<string>}
 */
export function benchArgs(log, help, flags = []) {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(help);
    process.exit(0);
  }
  const unknown = args.filter((a) => !flags.includes(a));
  if (unknown.length > 0) {
    log(`unknown argument(s): ${unknown.join(' ')} (see --help)`);
    process.exit(2);
  }
  return new Set(args);
}
