export { DbModule, DB } from './db.module.js';
export { createDatabase, migrateToLatest, isUniqueViolation, pingDatabase } from './create-database.js';
export type { Db } from './create-database.js';
export { runInTransaction, inAmbientTransaction, afterCommit } from './ambient-transaction.js';
export type {
  Database,
  ApiTokenTable,
  ReleaseTable,
  TufMetadataTable,
  TufTargetTable,
  NodeTable,
  NodeInventoryTable,
  NodeLabelTable,
  EnrollmentTable,
  EnrollmentAllowlistTable,
  AttestationVerdictTable,
  DeviceReportTable,
  DeltaBuildTable,
  DownloadTable,
  RolloutTable,
  RolloutNodeTable,
  RolloutMembershipTable,
  DirectorAssignmentTable,
  AuditLogTable,
  AuditPurgeTable,
} from './schema.js';
export { seedNodeRow, testDatabases, testNodeLabelRows, testNodeRow } from './testing.js';
export type { TestNodeRow } from './testing.js';
