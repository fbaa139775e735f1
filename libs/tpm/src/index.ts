export { startSoftwareTpm } from './software-tpm.js';
export type { SoftwareTpm, SoftwareTpmCa } from './software-tpm.js';
export {
  DEFAULT_TPM_HANDLES,
  EK_CERTIFICATE_NV_INDEX,
  Tpm2Tools,
  Tpm2ToolsError,
  TpmError,
} from './tpm2-tools.js';
export type {
  EkKind,
  Tpm2ToolsOptions,
  TpmErrorCode,
  TpmKey,
  TpmPersistentHandles,
  TpmQuote,
} from './tpm2-tools.js';
