import { parseTpm2bPublic, publicKeyObject } from '#otter/attestation';
import { jwkThumbprint } from '#otter/identity';

/** Device keys whose thumbprint this process computed: one per node polling it, each ~200 bytes. */
const HELD = 100_000;
const held = new Map<string, string>();

/**
 * The RFC 7638 thumbprint of a node's device key (TPM2B_PUBLIC, as bytes or as the base64 text its row stores):
 * what `cnf.jkt` of a token bound to that key names. Computed once per key per process (parsing and exporting a
 * key costs more than the poll it guards); the base64 text is the cache key, so a caller holding the row's text
 * (the director poll's batch) looks it up without decoding it.
 */
export function deviceKeyThumbprint(devicePublic: Buffer | string): string {
  const id = typeof devicePublic === 'string' ? devicePublic : devicePublic.toString('base64');
  let jkt = held.get(id);
  if (jkt === undefined) {
    jkt = jwkThumbprint(publicKeyObject(parseTpm2bPublic(Buffer.from(id, 'base64'))));
    if (held.size >= HELD) held.delete(held.keys().next().value!);
    held.set(id, jkt);
  }
  return jkt;
}
