import { describe, expect, it } from 'vitest';
import { renderTable } from './output.js';
import { Capture, RAW_TERMINAL_CONTROL } from './testing/cli-run.js';
import {
  rawStream,
  terminalSafe,
  terminalSafeLines,
  terminalSafeStream,
  terminalText,
} from './terminal-text.js';

/** What RAW_TERMINAL_CONTROL finds, a line feed included: for one value, which must stay on one line. */
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const RAW_CONTROL = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe('terminalSafe', () => {
  it.each([
    ['a screen clear (CSI 2J)', '\x1b[2J', '\\u001b[2J'],
    ['a window title (OSC 0, BEL)', '\x1b]0;title\x07', '\\u001b]0;title\\u0007'],
    ['an OSC 8 hyperlink ended by ST', '\x1b]8;;http://x\x1b\\', '\\u001b]8;;http://x\\u001b\\'],
    ['a carriage return overwriting the line', 'ok\rFAIL', 'ok\\rFAIL'],
    ['a line feed starting a fake row', 'a\nb', 'a\\nb'],
    ['a tab', 'a\tb', 'a\\tb'],
    ['NUL and backspace', 'a\x00\x08', 'a\\u0000\\u0008'],
    ['DEL', 'a\x7f', 'a\\u007f'],
    ['the C1 CSI, an 8-bit escape', '\u009b2J', '\\u009b2J'],
    ['the C1 OSC and ST', '\u009d0;t\u009c', '\\u009d0;t\\u009c'],
    ['a right-to-left override', 'abc\u202edcba', 'abc\\u202edcba'],
    ['a bidi isolate', '\u2066x\u2069', '\\u2066x\\u2069'],
    ['a line separator', 'a\u2028b', 'a\\u2028b'],
  ])('escapes %s', (_name, input, shown) => {
    expect(terminalSafe(input)).toBe(shown);
    expect(terminalSafe(input)).not.toMatch(RAW_CONTROL);
  });

  it('leaves printable text alone, non-ASCII included', () => {
    const text = 'pass: quote verified, PCRs match — naïve 東京 😀 \\u001b';
    expect(terminalSafe(text)).toBe(text);
  });
});

describe('terminalSafeLines', () => {
  it('keeps line feeds and escapes the rest', () => {
    expect(terminalSafeLines('a\x1b[2J\nb\r\n')).toBe('a\\u001b[2J\nb\\r\n');
  });

  it('keeps JSON valid and its value the same', () => {
    const value = { detail: '\x1b[2J\u009b\x7f\u202e\r\n' };
    const text = terminalSafeLines(JSON.stringify(value, null, 2));
    expect(text).not.toMatch(RAW_TERMINAL_CONTROL);
    expect(JSON.parse(text)).toEqual(value);
  });
});

describe('terminalText', () => {
  it('escapes the interpolated values, not the literal text', () => {
    expect(terminalText`${'n1'}: ${'failed\x1b[2J\nfake'}\n`).toBe('n1: failed\\u001b[2J\\nfake\n');
    expect(terminalText`${42} and ${null}`).toBe('42 and null');
  });
});

describe('renderTable', () => {
  it('escapes every cell, so a row stays one line and the columns stay aligned', () => {
    const out = renderTable(
      ['ID', 'REASON'],
      [
        ['a', 'x\ny\x1b[31m'],
        ['b', 'ok'],
      ],
    );
    expect(out).toBe('ID  REASON\na   x\\ny\\u001b[31m\nb   ok\n');
  });
});

describe('terminalSafeStream', () => {
  it('passes on every write escaped, in order, keeping its own line feeds', () => {
    const raw = new Capture(true);
    const safe = terminalSafeStream(raw);
    safe.write('error: \x1b]0;pwned\x07\n');
    safe.write('next\r\n');
    expect(raw.text).toBe('error: \\u001b]0;pwned\\u0007\nnext\\r\n');
  });

  it('tells whether the stream underneath is a terminal, and gives it back for the progress bar', () => {
    const raw = new Capture(true);
    const safe = terminalSafeStream(raw);
    expect(safe.isTTY).toBe(true);
    expect(rawStream(safe)).toBe(raw);
    expect(terminalSafeStream(safe)).toBe(safe);
    expect(rawStream(raw)).toBe(raw);
  });
});
