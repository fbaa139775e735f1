export { OtterApiClient } from './otter-api-client.js';
export type { PushReleaseInput, CreateTokenInput } from './otter-api-client.js';
export { ApiError, ApiUnreachableError } from './api-error.js';
export { resolveClientSettings, ClientSettingsError, DEFAULT_SERVER } from './client-settings.js';
export type { ClientSettings } from './client-settings.js';
export {
  ReleaseInputError,
  PCR_INDEX_PATTERN,
  SEMVER_PATTERN,
  parseMeasurements,
  validateMeasurements,
  validateReleaseFields,
} from './release-input.js';
export { UploadSourceError } from './multipart-upload.js';
export { TufAdminClient, TUF_REPOSITORIES } from './tuf-admin-client.js';
export type { TufRepositoryName } from './tuf-admin-client.js';
export { NodesClient } from './nodes-client.js';
export type { NodeListParams } from './nodes-client.js';
export { DeltasClient } from './deltas-client.js';
export { RolloutsClient } from './rollouts-client.js';
export { dpopProof, dpopHeaders } from './dpop-proof.js';
export type { DpopKey } from './dpop-proof.js';
export {
  CA_FILE_ENV,
  INSECURE_HTTP_ENV,
  TransportSecurityError,
  checkServerTransport,
  isLoopbackHost,
  transportSettings,
  trustCaFile,
} from './transport-security.js';
export type { TransportSettings } from './transport-security.js';
export { AuditClient } from './audit-client.js';
export type { AuditListFilter } from './audit-client.js';
export { EventsClient } from './events-client.js';
export type { EventStreamOptions, StreamedMessage } from './events-client.js';
