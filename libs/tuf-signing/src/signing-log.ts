/**
 * Where the signing layer says what it did. Nest's Logger fits as it is; the layer takes it as a parameter
 * so that it loads no framework (the offline root ceremony runs it too).
 */
export interface SigningLog {
  log(message: string): void;
  warn(message: string): void;
}
