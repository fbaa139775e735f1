export { DbModule, DB } from './db.module.js';
export { createDatabase, migrateToLatest, isUniqueViolation } from './create-database.js';
export type { Db } from './create-database.js';
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
} from './schema.js';
export { seedNodeRow, testDatabases, testNodeLabelRows, testNodeRow } from './testing.js';
export type { TestNodeRow } from './testing.js';
