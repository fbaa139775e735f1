import { parseTpm2bPublic, publicKeyObject } from '#otter/attestation';
import { jwkThumbprint } from '#otter/identity';

/** Device keys whose thumbprint this process computed: one per node polling it, each ~200 bytes. */
const HELD = 100_000;
const held = new Map<string, string>();

/**
 * The RFC 7638 thumbprint of a node's device key as its row holds it (TPM2B_PUBLIC): what `cnf.jkt` of a token
 * bound to that key names. Computed once per key per process (parsing and exporting a key costs more than the
 * poll it guards).
 */
export function deviceKeyThumbprint(devicePublic: Buffer): string {
  const id = devicePublic.toString('base64');
  let jkt = held.get(id);
  if (jkt === undefined) {
    jkt = jwkThumbprint(publicKeyObject(parseTpm2bPublic(devicePublic)));
    if (held.size >= HELD) held.delete(held.keys().next().value!);
    held.set(id, jkt);
  }
  return jkt;
}
