import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { OtterError } from '#otter/errors';
import { HashingCounter } from './hashing-counter.js';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Pipes data through a counter into a sink; returns what reached the sink and whether the counter ended. */
async function run(data: Buffer, counter: HashingCounter, chunk = 1000) {
  const received: Buffer[] = [];
  let ended = false;
  counter.on('end', () => (ended = true));
  const chunks = Array.from({ length: Math.ceil(data.length / chunk) }, (_, i) =>
    data.subarray(i * chunk, (i + 1) * chunk),
  );
  const sink = new Writable({
    write(part: Buffer, _encoding, callback) {
      received.push(part);
      callback();
    },
  });
  const error = await pipeline(Readable.from(chunks), counter, sink).then(
    () => undefined,
    (e: unknown) => e,
  );
  return { received: Buffer.concat(received), ended, error };
}

describe('HashingCounter', () => {
  it('passes bytes through unchanged while counting and hashing them', async () => {
    const data = randomBytes(100_000);
    const counter = new HashingCounter();
    const { received, error } = await run(data, counter);
    expect(error).toBeUndefined();
    expect(received.equals(data)).toBe(true);
    expect(counter.bytes).toBe(data.length);
    expect(counter.result()).toEqual({ length: data.length, sha256: sha256(data) });
  });

  it('accepts exactly maxBytes and fails on the first byte beyond, passing no more than the limit', async () => {
    const data = randomBytes(10_000);
    expect((await run(data, new HashingCounter({ maxBytes: 10_000 }))).error).toBeUndefined();

    const counter = new HashingCounter({ maxBytes: 9_999 });
    const { received, ended, error } = await run(data, counter);
    expect(error).toBeInstanceOf(OtterError);
    expect((error as OtterError).code).toBe('PAYLOAD_TOO_LARGE');
    expect(received.length).toBeLessThanOrEqual(9_999);
    expect(ended).toBe(false);
    expect(() => counter.result()).toThrow();
  });

  it('fails a body whose sha256 differs before the stream ends, so no consumer can commit it', async () => {
    const data = randomBytes(5_000);
    const counter = new HashingCounter({ expectedSha256: sha256(Buffer.from('other')) });
    const { ended, error } = await run(data, counter);
    expect((error as OtterError).code).toBe('BLOB_HASH_MISMATCH');
    expect((error as OtterError).details).toMatchObject({ actual: sha256(data) });
    expect(ended).toBe(false);
    expect(() => counter.result()).toThrow();
  });

  it('accepts the expected sha256 in either case', async () => {
    const data = randomBytes(5_000);
    const counter = new HashingCounter({ expectedSha256: sha256(data).toUpperCase() });
    expect((await run(data, counter)).error).toBeUndefined();
    expect(counter.result().sha256).toBe(sha256(data));
  });

  it('refuses malformed options up front', () => {
    for (const options of [
      { expectedSha256: 'abc' },
      { expectedSha256: `${'g'.repeat(64)}` },
      { maxBytes: -1 },
      { maxBytes: 1.5 },
    ]) {
      expect(() => new HashingCounter(options)).toThrow(
        expect.objectContaining({ code: 'VALIDATION_FAILED' }),
      );
    }
  });
});
