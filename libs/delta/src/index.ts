export {
  DELTA_FORMAT_VERSION,
  DELTA_HEADER_BYTES,
  DELTA_MAGIC,
  DeltaError,
  OP_BSDIFF,
  OP_COPY,
  OP_RAW,
  OP_ZERO,
  decodeHeader,
  decodeOperation,
} from './format.js';
export type { DeltaFailure, DeltaHeader, DeltaOperation, ImageIdentity } from './format.js';
export {
  DEFAULT_BLOCK_SIZE,
  DEFAULT_MEMORY_BUDGET_BYTES,
  DELTA_APPLIER_EXEC_ARGV,
  DELTA_BUILDER_ENV,
  FIXED_RESERVE_BYTES,
  BUDGET_BYTES_PER_EXTENT_BYTE,
  extentLimitsFor,
} from './limits.js';
export type { ExtentLimits } from './limits.js';
export { planDelta } from './plan.js';
export type {
  DeltaPhase,
  DeltaPlan,
  DeltaProgress,
  ExtentItem,
  PlanDeltaOptions,
  PlannedOperation,
  ProgressListener,
} from './plan.js';
export { assembleDelta, buildDelta, buildExtent, RAW_ZSTD_LEVEL } from './build.js';
export type {
  AssembleResult,
  BuildDeltaOptions,
  BuildDeltaResult,
  BuildExtentOptions,
  BuiltOperations,
  OperationCounts,
} from './build.js';
export { DELTA_FORMAT_VERSION_2, decodeHeaderV2 } from './format-v2.js';
export type { DeltaHeaderV2 } from './format-v2.js';
export { buildDeltaV2, DEFAULT_SEGMENT_BYTES, DEFAULT_V2_ZSTD_LEVEL } from './build-v2.js';
export type { BuildDeltaV2Options, BuildDeltaV2Result } from './build-v2.js';
export { applyDelta, DEFAULT_MAX_OPERATION_BYTES } from './apply.js';
export type { ApplyDeltaOptions, ApplyDeltaResult } from './apply.js';
export { bsdiffStats } from './bsdiff.js';
