import { OtterError, type ErrorCode } from '#otter/errors';

/** Failures of the boot environment (storage, tools, variable rules) and of the A/B slot protocol. */
export class BootEnvError extends OtterError {
  constructor(
    code: Extract<ErrorCode, `BOOT_ENV_${string}` | `BOOT_SLOT_${string}`>,
    message: string,
    details?: Record<string, unknown>,
  ) {
    super(code, message, details);
  }
}
