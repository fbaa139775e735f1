import { createHash } from 'node:crypto';
import { publicKeyObject, type TpmPublic } from './tpm-public.js';

/**
 * How Otter names a TPM: by its endorsement key, and by the certificate that vouches for it. Both are
 * independent of the bytes a device chooses to send, so a TPM cannot pass for a new one by re-encoding them.
 */

/**
 * Hex SHA-256 of the EK's DER SubjectPublicKeyInfo as node:crypto encodes it (rsaEncryption with NULL
 * parameters, or id-ecPublicKey with the named curve and the uncompressed point): the same value for every
 * public area and every certificate that carries this key (an RSA exponent field of 0 or 65537, another
 * template's attributes or policy, another CA). For an EK certificate that encodes its key this way (swtpm's,
 * and most), it is the SHA-256 of the certificate's SubjectPublicKeyInfo.
 */
export function ekKeySha256(ekPublic: TpmPublic): string {
  const spki = publicKeyObject(ekPublic).export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(spki).digest('hex');
}

/**
 * Hex SHA-256 of an EK certificate's issuer and serial number: the certificate's identity (RFC 5280: a CA
 * never reuses a serial, but another CA may). `issuer` as the verifier renders it (RFC 4514 style); the serial
 * as hex in any case, with or without colons and leading zeros.
 */
export function ekIssuerSerialSha256(issuer: string, serialHex: string): string {
  return createHash('sha256')
    .update(issuer, 'utf8')
    .update(Buffer.from([0]))
    .update(normalSerial(serialHex), 'ascii')
    .digest('hex');
}

/** Lower-case hex without separators or leading zeros ("0" for zero). */
export function normalSerial(serialHex: string): string {
  const digits = serialHex.replace(/:/g, '').toLowerCase().replace(/^0+/, '');
  return digits === '' ? '0' : digits;
}
