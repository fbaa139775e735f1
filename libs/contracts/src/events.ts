import { z } from 'zod';
import { UPDATE_STEPS } from './rollouts.js';

/**
 * Otter's domain events (docs/events.md): one discriminated union by `kind`, written by every process to the
 * Redis Stream and served by GET /api/v1/events. Each event names the ids it concerns (`hardwareId`,
 * `rolloutId`, `nodeId`) at the top level, so a stream can be filtered without knowing each kind's shape.
 */

const at = z.iso.datetime({ offset: true });
const id = z.string().min(1).max(200);

const base = { at };
const hardware = { hardwareId: id };
const rollout = { rolloutId: id, hardwareId: id };
const node = { nodeId: id, hardwareId: id };

/** The update steps an agent reports, as a node-step event carries them. */
export const NODE_STEPS = UPDATE_STEPS;

const releasePublished = z.object({
  kind: z.literal('release.published'),
  ...base,
  ...hardware,
  releaseId: id,
  version: z.string(),
  length: z.number().int().nonnegative(),
});

const delta = { ...base, ...hardware, buildId: id, fromVersion: z.string(), toVersion: z.string() };
const deltaQueued = z.object({ kind: z.literal('delta.build.queued'), ...delta });
const deltaProgress = z.object({
  kind: z.literal('delta.build.progress'),
  ...delta,
  stage: z.enum(['building', 'verifying']),
  percent: z.number().min(0).max(100),
});
const deltaPublished = z.object({
  kind: z.literal('delta.build.published'),
  ...delta,
  patchLength: z.number().int().nonnegative(),
  fullLength: z.number().int().nonnegative(),
});
const deltaFailed = z.object({ kind: z.literal('delta.build.failed'), ...delta, reason: z.string() });

const rolloutCreated = z.object({
  kind: z.literal('rollout.created'),
  ...base,
  ...rollout,
  name: z.string(),
  version: z.string(),
  waves: z.number().int().positive(),
});
const rolloutStarted = z.object({
  kind: z.literal('rollout.started'),
  ...base,
  ...rollout,
  nodes: z.number().int().nonnegative(),
  waves: z.array(z.number().int().nonnegative()),
});
const waveStarted = z.object({
  kind: z.literal('rollout.wave.started'),
  ...base,
  ...rollout,
  /** 1-based, as the CLI and the logs show waves. */
  wave: z.number().int().positive(),
});
const nodeAdmitted = z.object({
  kind: z.literal('rollout.node.admitted'),
  ...base,
  ...rollout,
  nodeId: id,
  wave: z.number().int().positive(),
  fromVersion: z.string().nullable(),
});
const nodeStep = z.object({
  kind: z.literal('rollout.node.step'),
  ...base,
  ...node,
  /** The rollout the node's report is about, when it belongs to one. */
  rolloutId: id.optional(),
  step: z.enum(NODE_STEPS),
  version: z.string(),
  bytes: z.number().int().nonnegative().optional(),
  /** The agent's detail (why, for `failed` and `rolled-back`): device-set text, escape it before printing. */
  reason: z.string().optional(),
});
const nodeSucceeded = z.object({
  kind: z.literal('rollout.node.succeeded'),
  ...base,
  ...rollout,
  nodeId: id,
});
const nodeFailed = z.object({
  kind: z.literal('rollout.node.failed'),
  ...base,
  ...rollout,
  nodeId: id,
  reason: z.string(),
});
const rolloutPaused = z.object({
  kind: z.literal('rollout.paused'),
  ...base,
  ...rollout,
  reason: z.string(),
});
const rolloutResumed = z.object({ kind: z.literal('rollout.resumed'), ...base, ...rollout });
const rolloutCompleted = z.object({ kind: z.literal('rollout.completed'), ...base, ...rollout });
const rolloutAborted = z.object({
  kind: z.literal('rollout.aborted'),
  ...base,
  ...rollout,
  reason: z.string(),
});

const nodeEnrolled = z.object({
  kind: z.literal('node.enrolled'),
  ...base,
  ...node,
  state: z.string(),
  reenrolled: z.boolean(),
});
const nodeApproved = z.object({ kind: z.literal('node.approved'), ...base, ...node });
const nodeRejected = z.object({ kind: z.literal('node.rejected'), ...base, ...node });
const nodeRevoked = z.object({ kind: z.literal('node.revoked'), ...base, ...node });
const pcrDifference = z.object({
  pcr: z.number().int().min(0).max(23),
  expected: z.string(),
  actual: z.string(),
  source: z.enum(['pinned', 'reference']),
});
const attestationVerdict = z.object({
  kind: z.literal('node.attestation.verdict'),
  ...base,
  ...node,
  verdict: z.enum(['passed', 'failed']),
  reason: z.string(),
  /** The PCRs whose quoted value differed from the pinned or the release's reference value. */
  differingPcrs: z.array(pcrDifference),
  /** PCRs the policy needed that the quote did not hold. */
  missingPcrs: z.array(z.number().int()),
  version: z.string().nullable(),
});
const nodeQuarantined = z.object({
  kind: z.literal('node.quarantined'),
  ...base,
  ...rollout,
  nodeId: id,
  reason: z.string(),
});

const tufRepository = z.enum(['image', 'director']);
/**
 * One role's new version, signed and committed: a root published (the ceremony, a key rotation, a dev root),
 * and each repository-wide role re-signed with it, by a release or a delta, or before expiry. One event per
 * role, so a client reads each role's version and expiry without parsing a list. The director's per-node
 * roles are no events (docs/events.md).
 */
const tufResigned = z.object({
  kind: z.literal('tuf.metadata.resigned'),
  ...base,
  repository: tufRepository,
  role: z.string(),
  version: z.number().int().positive(),
  expires: at,
});
const tufExpiring = z.object({
  kind: z.literal('tuf.role.expiring'),
  ...base,
  repository: tufRepository,
  role: z.string(),
  version: z.number().int().positive(),
  expires: at,
  secondsLeft: z.number().int(),
});

/** Every event Otter publishes. */
export const otterEventSchema = z.discriminatedUnion('kind', [
  releasePublished,
  deltaQueued,
  deltaProgress,
  deltaPublished,
  deltaFailed,
  rolloutCreated,
  rolloutStarted,
  waveStarted,
  nodeAdmitted,
  nodeStep,
  nodeSucceeded,
  nodeFailed,
  rolloutPaused,
  rolloutResumed,
  rolloutCompleted,
  rolloutAborted,
  nodeEnrolled,
  nodeApproved,
  nodeRejected,
  nodeRevoked,
  attestationVerdict,
  nodeQuarantined,
  tufResigned,
  tufExpiring,
]);

export type OtterEvent = z.infer<typeof otterEventSchema>;
export type OtterEventKind = OtterEvent['kind'];
export type OtterEventOf<K extends OtterEventKind> = Extract<OtterEvent, { kind: K }>;
/** What a source hands the publisher: `at` defaults to the moment of publishing. */
export type NewOtterEvent = {
  [K in OtterEventKind]: Omit<OtterEventOf<K>, 'at'> & { at?: string };
}[OtterEventKind];

/** Every kind, in the order of the union (the docs' table and the CLI's --kind check use it). */
export const OTTER_EVENT_KINDS: readonly OtterEventKind[] = otterEventSchema.options.map(
  (option) => option.shape.kind.value,
);

/** The event a stream sends when the client's Last-Event-ID fell out of the retention window. */
export const STREAM_RESET_EVENT = 'stream.reset';

/** One event as the stream holds it: its stream id (`<ms>-<seq>`, the SSE `id:`) and the event. */
export interface StreamedEventDto {
  id: string;
  event: OtterEvent;
}

/** A Redis stream id: milliseconds, a dash, a sequence number. */
export const STREAM_ID_PATTERN = /^\d{1,15}-\d{1,15}$/;

/** Filters of GET /api/v1/events: `kind` takes exact kinds or prefixes ending in `.*` (`rollout.*`). */
export const eventFilterQuerySchema = z
  .object({
    kind: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .transform((v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]))
      .pipe(
        z
          .array(
            z.string().refine(isKindPattern, {
              message: 'kind: an event kind (see docs/events.md) or a prefix like rollout.*',
            }),
          )
          .max(50),
      ),
    rollout: id.optional(),
    node: id.optional(),
    hardware: id.optional(),
    lastEventId: z
      .string()
      .regex(STREAM_ID_PATTERN, 'lastEventId: a stream id like 1765000000000-0')
      .optional(),
    ticket: z.string().min(1).max(200).optional(),
    /** `false`: send what the stream holds (after lastEventId, else all of it) and end. */
    follow: z
      .enum(['true', 'false'])
      .default('true')
      .transform((v) => v === 'true'),
  })
  .strict();
export type EventFilterQuery = z.infer<typeof eventFilterQuerySchema>;

/** POST /api/v1/events/tickets -> 201: a single-use ticket for `?ticket=` (browsers' EventSource). */
export const eventTicketSchema = z
  .object({
    ticket: z.string(),
    expiresAt: at,
  })
  .meta({
    example: { ticket: 'tkt_Qm9vdHMtYW5kLWNhdHMtYW5kLWJvb3Rz', expiresAt: '2026-03-14T09:27:53.000Z' },
  });
export type EventTicketDto = z.infer<typeof eventTicketSchema>;

export function isKindPattern(pattern: string): boolean {
  if (pattern.endsWith('.*')) {
    const prefix = pattern.slice(0, -1);
    return OTTER_EVENT_KINDS.some((k) => k.startsWith(prefix));
  }
  return (OTTER_EVENT_KINDS as readonly string[]).includes(pattern);
}

/** Whether an event passes the filters (kinds: exact or `prefix.*`; ids: equal). */
export function eventMatches(
  event: OtterEvent,
  filter: { kinds: readonly string[]; rolloutId?: string; nodeId?: string; hardwareId?: string },
): boolean {
  if (
    filter.kinds.length > 0 &&
    !filter.kinds.some((k) => (k.endsWith('.*') ? event.kind.startsWith(k.slice(0, -1)) : event.kind === k))
  )
    return false;
  const ids = event as { rolloutId?: string; nodeId?: string; hardwareId?: string };
  if (filter.rolloutId !== undefined && ids.rolloutId !== filter.rolloutId) return false;
  if (filter.nodeId !== undefined && ids.nodeId !== filter.nodeId) return false;
  if (filter.hardwareId !== undefined && ids.hardwareId !== filter.hardwareId) return false;
  return true;
}
