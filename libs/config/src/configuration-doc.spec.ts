import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { configSchema } from './config.schema.js';

const DOC = new URL('../../../docs/configuration.md', import.meta.url);

/**
 * The variables a zod schema reads, walked from the schema itself, so variables other branches add are
 * checked without anyone editing this file. Refinements keep a ZodObject; a transform or pipe wraps it.
 */
function schemaVariables(schema: z.ZodType): string[] {
  if (schema instanceof z.ZodObject) return Object.keys(schema.shape);
  if (schema instanceof z.ZodPipe) return schemaVariables(schema.in as z.ZodType);
  if (schema instanceof z.ZodIntersection)
    return [
      ...schemaVariables(schema.def.left as z.ZodType),
      ...schemaVariables(schema.def.right as z.ZodType),
    ];
  throw new Error(`cannot list the variables of a ${schema.def.type} schema: teach schemaVariables about it`);
}

/**
 * The variables docs/configuration.md documents: the backticked upper-case names in the first cell of every
 * row of a table whose first column is headed `variable`. Prose (the CLI's variables, say) does not count.
 */
function documentedVariables(markdown: string): string[] {
  const names: string[] = [];
  let inVariableTable = false;
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('|')) {
      inVariableTable = false;
      continue;
    }
    const first = line.split('|')[1]!.trim();
    if (first === 'variable') inVariableTable = true;
    else if (inVariableTable && !/^-+$/.test(first))
      names.push(...[...first.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!));
  }
  return names;
}

describe('docs/configuration.md', () => {
  const documented = documentedVariables(readFileSync(DOC, 'utf8'));
  const read = schemaVariables(configSchema);

  it('finds the variables on both sides (the parsers work)', () => {
    expect(read).toContain('OTTER_DATA_DIR');
    expect(read).toContain('DATABASE_URL');
    expect(documented).toContain('OTTER_DATA_DIR');
    expect(read.length).toBeGreaterThan(40);
  });

  it('documents every variable the config schema reads', () => {
    expect(read.filter((name) => !documented.includes(name))).toEqual([]);
  });

  it('documents no variable the config schema does not read', () => {
    expect(documented.filter((name) => !read.includes(name))).toEqual([]);
  });

  it('documents each variable once', () => {
    expect(documented.filter((name, i) => documented.indexOf(name) !== i)).toEqual([]);
  });

  it('reads tables the way the spec says, and a missing or stray variable would be caught', () => {
    const sample = [
      '| variable | default | meaning |',
      '| -------- | ------- | ------- |',
      '| `A_ONE` / `A_TWO` (`x`) | `3` | one |',
      '',
      'The CLI reads `NOT_IN_TABLE`.',
      '',
      '| other | x |',
      '| ----- | - |',
      '| `NOT_A_VARIABLE` | y |',
    ].join('\n');
    expect(documentedVariables(sample)).toEqual(['A_ONE', 'A_TWO']);
    expect(schemaVariables(z.object({ A_ONE: z.string() }).superRefine(() => {}))).toEqual(['A_ONE']);
    expect(schemaVariables(z.object({ B: z.string() }).transform((v) => v))).toEqual(['B']);
  });
});
