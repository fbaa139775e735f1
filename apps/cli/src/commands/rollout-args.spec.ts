import { InvalidArgumentError } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  collect,
  completeWaves,
  labelSet,
  parseDuration,
  parseLabel,
  parsePositiveInteger,
  parseShare,
  parseWave,
  parseWindow,
} from './rollout-args.js';

const refuses = (parse: () => unknown, message: RegExp): void => {
  expect(parse).toThrow(InvalidArgumentError);
  expect(parse).toThrow(message);
};

describe('rollout arguments', () => {
  it('waves: a percentage or a count, each with an optional soak', () => {
    expect(parseWave('10%')).toEqual({ percent: 10 });
    expect(parseWave('0.5%')).toEqual({ percent: 0.5 });
    expect(parseWave('5')).toEqual({ count: 5 });
    expect(parseWave('100%:3600')).toEqual({ percent: 100, soakSeconds: 3600 });
    expect(parseWave('5:10m')).toEqual({ count: 5, soakSeconds: 600 });
    expect(completeWaves([{ percent: 10 }, { count: 2, soakSeconds: 5 }], 60)).toEqual([
      { percent: 10, soakSeconds: 60 },
      { count: 2, soakSeconds: 5 },
    ]);
    expect(completeWaves([{ percent: 100 }])).toEqual([{ percent: 100, soakSeconds: 0 }]);
    for (const bad of ['', '%', '10 %', 'ten', '-5', '1.5', '10%:', '10%:soon', '10%:1w', '5:-1', '10%%']) {
      refuses(() => parseWave(bad), /PERCENT% or COUNT|seconds/);
    }
    refuses(() => parseWave('0%'), /above 0%/);
    refuses(() => parseWave('101%'), /at most 100%/);
    refuses(() => parseWave('0'), /at least 1 node/);
  });

  it('durations, shares, counts and windows', () => {
    expect([parseDuration('0'), parseDuration('90s'), parseDuration('10m'), parseDuration('2h')]).toEqual([
      0, 90, 600, 7200,
    ]);
    expect(parseDuration('1d')).toBe(86_400);
    for (const bad of ['', '1.5', '-1', '10 m', '1w', 'm']) refuses(() => parseDuration(bad), /seconds/);

    expect([parseShare('0.9'), parseShare('90%'), parseShare('1'), parseShare('100%')]).toEqual([
      0.9, 0.9, 1, 1,
    ]);
    for (const bad of ['0', '0%', '1.1', '101%', '-0.5', 'half', '']) refuses(() => parseShare(bad), /share/);

    expect(parsePositiveInteger('5')).toBe(5);
    for (const bad of ['0', '-1', '2.5', 'x', '']) refuses(() => parsePositiveInteger(bad), /at least 1/);

    expect(parseWindow('22:00-04:00')).toEqual({ start: '22:00', end: '04:00' });
    for (const bad of ['22:00', '24:00-01:00', '22:60-01:00', '2200-0400', '22:00 - 04:00']) {
      refuses(() => parseWindow(bad), /HH:MM-HH:MM/);
    }
    refuses(() => parseWindow('03:00-03:00'), /same time/);
  });

  it('labels: key=value with the server rule on both sides; a key given twice is refused', () => {
    expect(parseLabel('site=north')).toEqual(['site', 'north']);
    expect(parseLabel('topology.example.com/zone=a-1')).toEqual(['topology.example.com/zone', 'a-1']);
    refuses(() => parseLabel('site'), /key=value/);
    refuses(() => parseLabel('=north'), /bad label key ""/);
    refuses(() => parseLabel('site='), /bad label value ""/);
    refuses(() => parseLabel('site=a=b'), /bad label value "a=b"/);
    refuses(() => parseLabel('-site=a'), /bad label key/);
    refuses(() => parseLabel(`site=${'v'.repeat(64)}`), /bad label value/);

    expect(
      labelSet([
        ['a', '1'],
        ['b', '2'],
      ]),
    ).toEqual({ a: '1', b: '2' });
    refuses(
      () =>
        labelSet([
          ['a', '1'],
          ['a', '2'],
        ]),
      /label a is given twice/,
    );
    const many = Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v'] as const);
    refuses(() => labelSet(many), /at most 32 labels/);
    expect(Object.keys(labelSet(many.slice(0, 32)))).toHaveLength(32);
  });

  it('collect: repeatable options keep every value in order', () => {
    const add = collect(Number);
    expect(add('2', add('1', undefined))).toEqual([1, 2]);
  });
});
