import { describe, expect, it } from 'vitest';
import { parseEnvListing } from './env-listing.js';

describe('parseEnvListing', () => {
  it('splits at the first = and keeps = in values', () => {
    expect(parseEnvListing('bootargs=root=/dev/mmcblk0p2 ro\notter_slot=a\n', 'test')).toEqual({
      bootargs: 'root=/dev/mmcblk0p2 ro',
      otter_slot: 'a',
    });
  });

  it('reads a line without = as the continuation of a value printed with its newline', () => {
    expect(parseEnvListing('note=line one\nline two\nx=1\n', 'test')).toEqual({
      note: 'line one\nline two',
      x: '1',
    });
  });

  it('refuses a listing where a value forged a variable that also exists', () => {
    expect(() => parseEnvListing('note=x\notter_slot=b\notter_slot=a\n', 'test')).toThrow(
      expect.objectContaining({ code: 'BOOT_ENV_CORRUPT' }),
    );
  });

  it('refuses a listing that starts mid-value', () => {
    expect(() => parseEnvListing('orphan\n', 'test')).toThrow(
      expect.objectContaining({ code: 'BOOT_ENV_CORRUPT' }),
    );
  });

  it('reads an empty listing as an empty environment', () => {
    expect(parseEnvListing('', 'test')).toEqual({});
  });
});
