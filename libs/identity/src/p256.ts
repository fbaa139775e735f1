import { KeyObject } from 'node:crypto';

/** True for an EC P-256 public key: the only kind a TPM device key (and so a node identity) can be. */
export function isP256PublicKey(key: unknown): key is KeyObject {
  return (
    key instanceof KeyObject &&
    key.type === 'public' &&
    key.asymmetricKeyType === 'ec' &&
    key.asymmetricKeyDetails?.namedCurve === 'prime256v1'
  );
}
