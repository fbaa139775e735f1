/**
 * Keys that name or reach an object's prototype. JSON.parse keeps `__proto__` as an ordinary key, but any
 * later copy onto a plain object (zod's record and object parsers among them) either drops it or replaces
 * the copy's prototype; `constructor` and `prototype` lead there too. Either way what is used would no longer
 * be exactly what was sent, so such JSON is refused outright.
 */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Why a client's JSON text was refused: not JSON, or a key PROTOTYPE_KEYS names. */
export class UntrustedJsonError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UntrustedJsonError';
  }
}

/**
 * JSON.parse for text from outside (request bodies, a release's `measurements`), shared by the api and the
 * CLI so both refuse the same input: invalid JSON and objects with a `__proto__`, `constructor` or
 * `prototype` key at any depth are an UntrustedJsonError. A leading byte-order mark is ignored.
 */
export function parseUntrustedJson(text: string): unknown {
  try {
    return JSON.parse(text.replace(/^\uFEFF/, ''), (key: string, value: unknown) => {
      if (PROTOTYPE_KEYS.has(key)) throw new UntrustedJsonError(`the key "${key}" is not allowed`);
      return value;
    });
  } catch (e) {
    if (e instanceof UntrustedJsonError) throw e;
    throw new UntrustedJsonError(`not valid JSON (${(e as Error).message})`);
  }
}
