import { BootEnvError } from './boot-env.error.js';
import type { BootVariables } from './boot-variables.js';

/**
 * Parses the `name=value` lines that `fw_printenv` and `grub-editenv list` print. Both tools print a value's
 * newline raw, so a line without `=` continues the previous value, and a name seen twice can only come from a
 * value that forges a line of its own: that listing is refused rather than trusted either way. (Otter never
 * writes such values; another writer of the environment could.)
 */
export function parseEnvListing(text: string, source: string): BootVariables {
  const variables = new Map<string, string>();
  let last: string | undefined;
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const line of lines) {
    const eq = line.indexOf('=');
    if (eq === -1) {
      if (last === undefined) throw corrupt(source, `line without a variable name: ${JSON.stringify(line)}`);
      variables.set(last, `${variables.get(last) ?? ''}\n${line}`);
      continue;
    }
    const name = line.slice(0, eq);
    if (variables.has(name)) throw corrupt(source, `variable ${JSON.stringify(name)} appears twice`);
    variables.set(name, line.slice(eq + 1));
    last = name;
  }
  return Object.fromEntries(variables);
}

function corrupt(source: string, why: string): BootEnvError {
  return new BootEnvError('BOOT_ENV_CORRUPT', `${source} listing cannot be trusted (${why})`, { source });
}
