/**
 * What a TPM structure can be wrong in. The names are Otter's error codes (libs/errors): the verifier rethrows
 * a TpmWireError as its own error with the same code, so the API answers it as it always did.
 */
export type TpmWireErrorCode =
  | 'TPM_PUBLIC_MALFORMED'
  | 'TPM_PUBLIC_UNSUPPORTED'
  | 'TPM_ATTEST_MALFORMED'
  | 'TPM_SIGNATURE_MALFORMED'
  | 'TPM_SIGNATURE_UNSUPPORTED'
  | 'EK_TEMPLATE_MISMATCH';

/**
 * The only error the wire library throws for bad bytes: a stable `code` and a reason for people. Everything it
 * parses may come from a device, so a RangeError or TypeError escaping would be a bug. No Nest, no
 * `#otter/errors`: the agent and the offline tools load this library alone.
 */
export class TpmWireError extends Error {
  override readonly name = 'TpmWireError';

  constructor(
    readonly code: TpmWireErrorCode,
    reason: string,
  ) {
    super(reason);
  }
}
