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

export interface Database {
  api_tokens: ApiTokenTable;
  releases: ReleaseTable;
  tuf_metadata: TufMetadataTable;
  tuf_targets: TufTargetTable;
}
