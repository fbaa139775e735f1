import type {
  AllowEnrollmentRequest,
  AuditListDto,
  CreatedTokenDto,
  CreateRolloutRequest,
  DeltaBuildDto,
  DeltaBuildListDto,
  DeltaRequest,
  EventTicketDto,
  NodeDetailDto,
  NodeDto,
  NodeListDto,
  ReenrollmentDto,
  ReleaseDto,
  ReleaseListDto,
  RolloutDto,
  RolloutListDto,
  RolloutNodeDto,
  RolloutNodeListDto,
  SavingsDto,
  SetNodeLabelsRequest,
  TokenListDto,
  TufOnlineKeyDto,
  TufOnlineKeysDto,
} from '#otter/contracts';
import type * as G from './generated/index.js';

/**
 * The client's requests and answers, held against the types generated from GET /api/openapi.json: what it
 * sends must be what the document accepts, and what the document answers must be what the client reads.
 * Nothing runs here; a mismatch fails `make check` (tsc).
 */
type Fits<A, B> = [A] extends [B] ? true : false;

export const GENERATED_CONTRACT: Record<string, true> = {
  createToken: true satisfies Fits<G.PostTokensResponse, CreatedTokenDto>,
  listTokens: true satisfies Fits<G.GetTokensResponse, TokenListDto>,
  listReleases: true satisfies Fits<G.GetReleasesResponse, ReleaseListDto>,
  pushRelease: true satisfies Fits<G.PostReleasesResponse, ReleaseDto>,
  requestDelta: true satisfies Fits<DeltaRequest, G.PostDeltasData['body']>,
  requestDeltaAnswer: true satisfies Fits<G.PostDeltasResponse, DeltaBuildDto>,
  listDeltas: true satisfies Fits<G.GetDeltasResponse, DeltaBuildListDto>,
  savings: true satisfies Fits<G.GetSavingsResponse, SavingsDto>,
  issueEventTicket: true satisfies Fits<G.PostEventsTicketsResponse, EventTicketDto>,
  listAudit: true satisfies Fits<G.GetAuditResponse, AuditListDto>,
  listNodePage: true satisfies Fits<G.GetNodesResponse, NodeListDto>,
  nodeDetail: true satisfies Fits<G.GetNodesIdResponse, NodeDetailDto>,
  approveNode: true satisfies Fits<G.PostNodesIdApproveResponse, NodeDto>,
  reenrollNode: true satisfies Fits<G.PostNodesIdReEnrollResponse, ReenrollmentDto>,
  setLabels: true satisfies Fits<SetNodeLabelsRequest, G.PutNodesIdLabelsData['body']>,
  setLabelsAnswer: true satisfies Fits<G.PutNodesIdLabelsResponse, NodeDto>,
  allowEnrollment: true satisfies Fits<AllowEnrollmentRequest, G.PostEnrollmentAllowlistData['body']>,
  createRollout: true satisfies Fits<CreateRolloutRequest, G.PostRolloutsData['body']>,
  createRolloutAnswer: true satisfies Fits<G.PostRolloutsResponse, RolloutDto>,
  listRollouts: true satisfies Fits<G.GetRolloutsResponse, RolloutListDto>,
  rolloutNodes: true satisfies Fits<G.GetRolloutsIdNodesResponse, RolloutNodeListDto>,
  pauseRollout: true satisfies Fits<{ reason: string }, NonNullable<G.PostRolloutsIdPauseData['body']>>,
  excludeNode: true satisfies Fits<G.PostRolloutsIdNodesNodeIdExcludeResponse, RolloutNodeDto>,
  onlineKeys: true satisfies Fits<G.GetTufImageOnlineKeysResponse, TufOnlineKeysDto>,
  rotateKey: true satisfies Fits<G.PostTufImageOnlineKeysRoleRotateResponse, TufOnlineKeyDto>,
};
