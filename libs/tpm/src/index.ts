export { startSoftwareTpm } from './software-tpm.js';
export type { SoftwareTpm, SoftwareTpmCa } from './software-tpm.js';
