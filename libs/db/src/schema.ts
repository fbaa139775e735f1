import type { Generated } from 'kysely';

/** Row shapes as both dialects store them: times are ISO-8601 text, JSON is text, sizes are bigint. */
export interface ApiTokenTable {
  id: string;
  name: string;
  role: string;
  token_hash: string;
  created_at: string;
  revoked_at: string | null;
}

export interface ReleaseTable {
  id: string;
  hardware_id: string;
  version: string;
  target_path: string;
  sha256: string;
  length: number | string;
  blob_key: string;
  measurements: string;
  notes: string;
  created_at: string;
  created_by: string;
}

export interface TufMetadataTable {
  repository: string;
  role: string;
  version: number;
  expires_at: string;
  body: string;
  created_at: string;
}

export interface TufTargetTable {
  repository: string;
  path: string;
  bin: string;
  length: number | string;
  sha256: string;
  custom: string;
  blob_key: string;
  created_at: string;
}

export interface NodeTable {
  id: string;
  hardware_id: string;
  state: string;
  ek_public_sha256: string;
  ek_cert_serial: string;
  ek_cert_issuer: string;
  ak_public: string;
  device_public: string | null;
  device_cert_serial: string | null;
  device_cert_not_after: string | null;
  pinned_pcrs: string;
  running_version: string | null;
  tpm_reset_count: number | string | null;
  tpm_restart_count: number | string | null;
  tpm_clock: number | string | null;
  integrity_failed_at: string | null;
  /** JSON object of string labels. */
  labels: Generated<string>;
  created_at: string;
  updated_at: string;
  /** The TPM's EK key: hex sha256 of its SubjectPublicKeyInfo; unique (NULL only for pre-0005 leftovers). */
  ek_key_sha256: string | null;
  /** The EK certificate: hex sha256 of issuer and serial; unique. */
  ek_issuer_serial_sha256: string | null;
  /** An admin's re-enrollment window: until this time the node's own TPM may enroll once into this row. */
  reenroll_until: string | null;
  /** Who opened that window: the management token's name and id. */
  reenroll_by: string | null;
  /** The node's last authenticated device request (to about five minutes). */
  last_seen_at: Generated<string | null>;
  /** The newest verdict, kept on the row (written with each verdict): 1 passed, 0 failed, NULL never. */
  last_verdict_passed: Generated<number | null>;
  last_verdict_reason: Generated<string | null>;
  last_verdict_at: Generated<string | null>;
}

/** The agent's latest inventory of the node (one row a node). */
export interface NodeInventoryTable {
  node_id: string;
  /** JSON NodeInventory. */
  inventory: string;
  /** Hex sha256 of the inventory as the agent hashed it: what it compares to skip an unchanged report. */
  sha256: string;
  /** The agent's time of the report. */
  reported_at: string;
  /** Otter's time it stored it. */
  received_at: string;
}

/** The operator labels of `nodes.labels`, one row a label, for the node list's label filter. */
export interface NodeLabelTable {
  node_id: string;
  key: string;
  value: string;
  /** The node's created_at: the list's page order, which the label index ends with. */
  node_created_at: string;
}

export interface EnrollmentTable {
  id: string;
  hardware_id: string;
  ek_kind: string;
  ek_public: string;
  ek_public_sha256: string;
  ek_cert_serial: string;
  ek_cert_issuer: string;
  ak_public: string;
  secret_sha256: string;
  nonce: string;
  running_version: string | null;
  attempts: number;
  state: string;
  expires_at: string;
  created_at: string;
  /** The node this enrollment re-enrolls (an admin's `otter node re-enroll`), or NULL for a new node. */
  reenroll_node_id: string | null;
}

export interface EnrollmentAllowlistTable {
  kind: string;
  value: string;
  note: string;
  created_at: string;
}

export interface AttestationVerdictTable {
  id: string;
  node_id: string;
  passed: number;
  reason: string;
  pcr_values: string;
  release_version: string | null;
  /** 1 when the verdict proves release_version booted (docs/attestation.md); 0 otherwise. */
  release_proven: Generated<number>;
  created_at: string;
  /** JSON [{ pcr, quoted, reference, source }]: the PCRs that differed; NULL before 0009_node_inventory. */
  pcr_mismatches: Generated<string | null>;
}

export interface DeviceReportTable {
  id: string;
  node_id: string;
  kind: string;
  ok: number;
  event: string;
  detail: string;
  reported_at: string;
  created_at: string;
  /** An update step's release version and bytes (kind `update`); NULL otherwise. */
  version: Generated<string | null>;
  bytes: Generated<number | string | null>;
}

export interface DeltaBuildTable {
  id: string;
  hardware_id: string;
  from_version: string;
  to_version: string;
  from_sha256: string;
  to_sha256: string;
  from_length: number | string;
  to_length: number | string;
  target_path: string;
  state: string;
  progress: number;
  patch_length: number | string | null;
  patch_sha256: string | null;
  blob_key: string | null;
  build_seconds: number | null;
  peak_rss_bytes: number | string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
}

export interface DownloadTable {
  id: string;
  node_id: string;
  hardware_id: string;
  version: string;
  method: string;
  bytes_downloaded: number | string;
  full_bytes: number | string;
  created_at: string;
}

export interface RolloutTable {
  id: string;
  name: string;
  release_id: string;
  hardware_id: string;
  /** JSON: { labels?: Record<string, string>, nodes?: string[] } */
  selector: string;
  /** JSON: Array<{ percent?: number, count?: number, soakSeconds: number }> */
  waves: string;
  success_threshold: number;
  failure_threshold: number;
  max_attestation_age_seconds: number;
  /** JSON: { start: 'HH:MM', end: 'HH:MM' } in UTC, or null */
  maintenance_window: string | null;
  max_concurrent: number | null;
  node_deadline_seconds: number;
  state: string;
  state_reason: string | null;
  current_wave: number;
  wave_started_at: string | null;
  revision: number;
  created_by: string;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

export interface RolloutNodeTable {
  rollout_id: string;
  node_id: string;
  wave: number;
  state: string;
  reason: string | null;
  from_version: string | null;
  admitted_at: string | null;
  finished_at: string | null;
  updated_at: string;
}

export interface RolloutMembershipTable {
  node_id: string;
  rollout_id: string;
}

export interface DirectorAssignmentTable {
  node_id: string;
  hardware_id: string;
  release_id: string | null;
  target_path: string | null;
  version: string | null;
  sha256: string | null;
  length: number | string | null;
  rollout_id: string | null;
  generation: number;
  metadata_generation: number | null;
  updated_at: string;
  /** The expiry of the node's newest version of each director role (migration 0010_fleet_aggregates). */
  targets_expires_at: Generated<string | null>;
  snapshot_expires_at: Generated<string | null>;
  timestamp_expires_at: Generated<string | null>;
}

export interface AuditLogTable {
  id: Generated<number | string>;
  at: string;
  actor_token_id: string | null;
  actor_name: string | null;
  actor_role: string | null;
  action: string;
  target_kind: string;
  target_id: string | null;
  request_id: string | null;
  source: string | null;
  outcome: string;
  changes: string;
}

export interface AuditPurgeTable {
  id: string;
  at: string;
  before: string;
}

export interface Database {
  api_tokens: ApiTokenTable;
  releases: ReleaseTable;
  tuf_metadata: TufMetadataTable;
  tuf_targets: TufTargetTable;
  nodes: NodeTable;
  node_inventory: NodeInventoryTable;
  node_labels: NodeLabelTable;
  enrollments: EnrollmentTable;
  enrollment_allowlist: EnrollmentAllowlistTable;
  attestation_verdicts: AttestationVerdictTable;
  device_reports: DeviceReportTable;
  delta_builds: DeltaBuildTable;
  downloads: DownloadTable;
  rollouts: RolloutTable;
  rollout_nodes: RolloutNodeTable;
  rollout_memberships: RolloutMembershipTable;
  director_assignments: DirectorAssignmentTable;
  audit_log: AuditLogTable;
  audit_purges: AuditPurgeTable;
}
