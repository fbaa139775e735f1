import { readFile, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BootEnvError } from './boot-env.error.js';
import type { BootEnvironment } from './boot-environment.js';
import {
  applyChanges,
  assertValidChanges,
  isValidVariableName,
  isValidVariableValue,
  type BootVariableChanges,
  type BootVariables,
} from './boot-variables.js';
import { replaceDurably, siblingTempPath } from './durable-file.js';
import { SerialQueue } from './serial-queue.js';

const FORMAT = 'otter-boot-env/1';

interface FileContents {
  format: typeof FORMAT;
  variables: Record<string, string>;
}

/**
 * A boot environment in one JSON file, for tests and the demo's simulated nodes. A missing file is an empty
 * environment (a blank bootloader environment); anything that is not exactly what this class writes is
 * refused, never repaired, because guessing at slot state is how a node boots the wrong image.
 */
export class FileBootEnvironment implements BootEnvironment {
  readonly description: string;
  private readonly queue = new SerialQueue();

  private readonly path: string;

  constructor(path: string) {
    this.path = resolve(path);
    this.description = `file ${this.path}`;
  }

  read(): Promise<BootVariables> {
    return this.queue.run(() => this.load());
  }

  async write(changes: BootVariableChanges): Promise<void> {
    assertValidChanges(changes);
    return this.queue.run(async () => {
      const next = applyChanges(await this.load(), changes);
      const contents: FileContents = { format: FORMAT, variables: { ...next } };
      const temp = siblingTempPath(this.path);
      await writeFile(temp, `${JSON.stringify(contents, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      await replaceDurably(temp, this.path);
    });
  }

  private async load(): Promise<BootVariables> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new BootEnvError(
        'BOOT_ENV_UNAVAILABLE',
        `cannot read boot environment ${this.path}: ${String(error)}`,
      );
    }
    return parseContents(text, this.path);
  }
}

function parseContents(text: string, path: string): BootVariables {
  const corrupt = (why: string): BootEnvError =>
    new BootEnvError('BOOT_ENV_CORRUPT', `boot environment ${path} is corrupt (${why}); refusing to use it`, {
      path,
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw corrupt('not JSON');
  }
  if (!isRecord(parsed) || parsed.format !== FORMAT) throw corrupt(`not an ${FORMAT} document`);
  const variables = parsed.variables;
  if (!isRecord(variables)) throw corrupt('no variables object');
  for (const [name, value] of Object.entries(variables)) {
    if (!isValidVariableName(name)) throw corrupt(`invalid variable name ${JSON.stringify(name)}`);
    if (typeof value !== 'string' || !isValidVariableValue(value)) {
      throw corrupt(`invalid value for ${name}`);
    }
  }
  return variables as Record<string, string>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
