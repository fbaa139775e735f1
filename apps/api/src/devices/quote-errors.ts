import type { ErrorCode } from '#otter/errors';

/** What a TPM quote can be refused for (libs/attestation's verifyQuote), on every route that takes one. */
export const QUOTE_ERRORS: readonly ErrorCode[] = [
  'QUOTE_MALFORMED',
  'QUOTE_BAD_MAGIC',
  'QUOTE_WRONG_TYPE',
  'QUOTE_NONCE_MISMATCH',
  'QUOTE_SIGNATURE_INVALID',
  'QUOTE_SELECTION_MISMATCH',
  'QUOTE_PCR_DIGEST_MISMATCH',
  'QUOTE_COUNTER_ROLLBACK',
];
