export type { ReleaseDto, ReleaseListDto } from './releases.js';
export { HARDWARE_ID_PATTERN, SHA256_HEX_PATTERN, MAX_NOTES_BYTES } from './releases.js';
export { ROLES } from './auth.js';
export type { Role, TokenDto, CreatedTokenDto, TokenListDto } from './auth.js';
export type {
  OnlineRoleName,
  TufPublicKeyJson,
  TufOnlineKeyDto,
  TufOnlineKeysDto,
  PublishedRootDto,
} from './tuf.js';
export type {
  EnrollmentRequest,
  EnrollmentChallenge,
  TpmQuote,
  ActivationRequest,
  ActivationResult,
  NodeIdentityState,
  IdentityRequest,
  IdentityResult,
  AccessTokenDto,
  AttestationChallenge,
  AttestationRequest,
  VerdictDto,
  DeviceReport,
  NodeDto,
  NodeListDto,
  SetNodeLabelsRequest,
  EnrollmentAllowKind,
  AllowEnrollmentRequest,
  ReenrollmentDto,
} from './devices.js';
export {
  ENROLLMENT_ALLOW_KINDS,
  LABEL_PATTERN,
  MAX_NODE_LABELS,
  DEVICE_REPORT_LIMITS,
  DEVICE_CERTIFICATE_EXPIRED,
} from './devices.js';
export type {
  DeltaBuildState,
  DeltaBuildDto,
  DeltaBuildListDto,
  DeltaRequest,
  DownloadReport,
  SavingsDto,
  DeltaTargetCustom,
} from './deltas.js';
export type {
  RolloutState,
  RolloutNodeState,
  UpdateStep,
  UpdateReport,
  WaveSpec,
  RolloutSelector,
  MaintenanceWindow,
  CreateRolloutRequest,
  WaveProgressDto,
  RolloutDto,
  RolloutListDto,
  RolloutNodeDto,
  RolloutNodeListDto,
  DeviceInstructionsDto,
} from './rollouts.js';
export {
  WINDOW_TIME_PATTERN,
  maintenanceWindowProblem,
  UPDATE_REPORT_LIMITS,
  UPDATE_STEPS,
  ROLLOUT_STATES,
} from './rollouts.js';
export { DELTA_BUILD_STATES } from './deltas.js';
export { parseUntrustedJson, UntrustedJsonError } from './untrusted-json.js';
export { DPOP_PROOF_TYP, DPOP_AUTH_SCHEME, DPOP_HEADER, accessTokenHash, dpopTargetUri } from './dpop.js';
export type { DpopProofClaims } from './dpop.js';
export {
  AUDIT_ACTIONS,
  AUDIT_OUTCOMES,
  AUDIT_TARGET_KINDS,
  AUDIT_PAGE_MAX,
  AUDIT_PAGE_DEFAULT,
  auditEntryDto,
  auditListDto,
  auditQuery,
} from './audit.js';
export type {
  AuditAction,
  AuditOutcome,
  AuditTargetKind,
  AuditEntryDto,
  AuditListDto,
  AuditQuery,
} from './audit.js';
export {
  otterEventSchema,
  OTTER_EVENT_KINDS,
  NODE_STEPS,
  STREAM_RESET_EVENT,
  STREAM_ID_PATTERN,
  eventFilterQuerySchema,
  eventTicketSchema,
  eventMatches,
  isKindPattern,
} from './events.js';
export type {
  OtterEvent,
  OtterEventKind,
  OtterEventOf,
  NewOtterEvent,
  StreamedEventDto,
  EventFilterQuery,
  EventTicketDto,
} from './events.js';
export { deviceText } from './device-text.js';
export {
  ATTESTATION_STATUSES,
  DURATION_PATTERN,
  NODE_HISTORY_LIMITS,
  NODE_INVENTORY_LIMITS,
  NODE_PAGE_LIMITS,
  durationSeconds,
  inventoryReceiptSchema,
  inventoryReportSchema,
  nodeDetailDtoSchema,
  nodeDtoSchema,
  nodeInventorySchema,
  nodeListDtoSchema,
  nodeListQuerySchema,
} from './node-story.js';
export type {
  AttestationStatus,
  InventoryReceipt,
  InventoryReport,
  NodeDetailDto,
  NodeDownloadDto,
  NodeInventory,
  NodeListQuery,
  PcrMismatchDto,
  RolloutMembershipDto,
  VerdictSummaryDto,
} from './node-story.js';
