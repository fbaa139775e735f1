import { z } from 'zod';
import { EXAMPLE } from './example-values.js';
import { deviceText } from './device-text.js';
import { LABEL_PATTERN } from './devices.js';
import { HARDWARE_ID_PATTERN } from './releases.js';

/** Rollouts (docs/rollouts.md): the API's request and response shapes. */

export const ROLLOUT_STATES = ['draft', 'running', 'paused', 'completed', 'aborted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

/**
 * Where one node is in a rollout. `pending` waits for its wave; `waiting-attestation` was asked for a fresh
 * attestation; `assigned` has a director assignment; the agent's reports move it through `downloading` to
 * `committed`; it `succeeded` once Otter has a passing attestation with the new release's measurements.
 */
export const ROLLOUT_NODE_STATES = [
  'pending',
  'waiting-attestation',
  'quarantined',
  'assigned',
  'downloading',
  'installed',
  'rebooting',
  'booted',
  'attested',
  'committed',
  'succeeded',
  'failed',
  'rolled-back',
  'excluded',
  'cancelled',
] as const;
export type RolloutNodeState = (typeof ROLLOUT_NODE_STATES)[number];

/** The update steps an agent reports, in the order it goes through them (the last two end a failed attempt). */
export const UPDATE_STEPS = [
  'assigned',
  'downloading',
  'installed',
  'rebooting',
  'booted',
  'attested',
  'committed',
  'rolled-back',
  'failed',
] as const;
export type UpdateStep = (typeof UPDATE_STEPS)[number];

export const UPDATE_REPORT_LIMITS = { version: 64, slot: 16, detail: 1000 } as const;

export const updateReportSchema = z
  .strictObject({
    step: z.enum(UPDATE_STEPS),
    version: deviceText(UPDATE_REPORT_LIMITS.version)
      .min(1)
      .meta({ description: 'The release version the step is about.' }),
    rolloutId: z
      .uuid()
      .optional()
      .meta({ description: "The rollout id from the director's correlation id, when there is one." }),
    // At most the release's image (UpdateProgressService checks the release); a safe integer before that.
    bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    slot: deviceText(UPDATE_REPORT_LIMITS.slot).min(1).optional(),
    detail: deviceText(UPDATE_REPORT_LIMITS.detail).optional(),
    at: z.iso.datetime(),
  })
  .meta({
    id: 'UpdateReport',
    example: {
      step: 'installed',
      version: EXAMPLE.version,
      rolloutId: EXAMPLE.rolloutId,
      bytes: 18874368,
      slot: 'b',
      detail: 'written to slot b, verified sha256',
      at: EXAMPLE.at,
    },
  });
export type UpdateReport = z.infer<typeof updateReportSchema>;

/** A maintenance window's start or end: UTC `HH:MM`. */
export const WINDOW_TIME_PATTERN = /^(?:[01]\d|2[0-3]):[0-5]\d$/;

const label = z.string().regex(LABEL_PATTERN, 'a label key or value: [A-Za-z0-9._/-], 1..63 characters');
const hhmm = z.string().regex(WINDOW_TIME_PATTERN, 'a UTC time as HH:MM');
const share = z.number().gt(0).max(1);

export const waveSpecSchema = z
  .strictObject({
    percent: z
      .number()
      .gt(0)
      .max(100)
      .optional()
      .meta({ description: 'Share of the target group; or `count` nodes.' }),
    count: z.number().int().min(1).max(10_000_000).optional(),
    soakSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400)
      .meta({ description: 'Minimum seconds the wave soaks after it started before the next may start.' }),
  })
  .refine((w) => (w.percent === undefined) !== (w.count === undefined), 'a wave has either percent or count')
  .meta({ id: 'WaveSpec' });
export type WaveSpec = z.infer<typeof waveSpecSchema>;

export const rolloutSelectorSchema = z
  .strictObject({
    labels: z.record(label, label).optional(),
    nodes: z.array(z.uuid()).min(1).max(100_000).optional(),
  })
  .meta({ id: 'RolloutSelector' });
export type RolloutSelector = z.infer<typeof rolloutSelectorSchema>;

export interface MaintenanceWindow {
  /** UTC `HH:MM`; a window may wrap past midnight. */
  start: string;
  end: string;
}

/**
 * Why a maintenance window is not one, or undefined. The API and the CLI both refuse what this names: a
 * window that starts when it ends would be either always or never open, and neither is what was meant.
 */
export function maintenanceWindowProblem(window: MaintenanceWindow): string | undefined {
  if (!WINDOW_TIME_PATTERN.test(window.start) || !WINDOW_TIME_PATTERN.test(window.end))
    return 'start and end are UTC times as HH:MM';
  if (window.start === window.end) return 'the window starts and ends at the same time';
  return undefined;
}

export const maintenanceWindowSchema = z
  .strictObject({ start: hhmm, end: hhmm })
  .superRefine((window, ctx) => {
    const problem = maintenanceWindowProblem(window);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .meta({ id: 'MaintenanceWindow', description: 'UTC HH:MM; a window may wrap past midnight.' });

export const createRolloutRequestSchema = z
  .strictObject({
    name: z.string().min(1).max(100),
    hardwareId: z.string().regex(HARDWARE_ID_PATTERN, 'not a valid hardware id'),
    version: z.string().min(1).max(64),
    selector: rolloutSelectorSchema,
    waves: z.array(waveSpecSchema).min(1).max(20),
    successThreshold: share,
    failureThreshold: share,
    maxAttestationAgeSeconds: z
      .number()
      .int()
      .min(1)
      .max(30 * 86_400),
    nodeDeadlineSeconds: z
      .number()
      .int()
      .min(10)
      .max(7 * 86_400)
      .optional(),
    maintenanceWindow: maintenanceWindowSchema.nullable().optional(),
    maxConcurrent: z.number().int().min(1).max(1_000_000).nullable().optional(),
  })
  .meta({
    id: 'CreateRolloutRequest',
    example: {
      name: 'rpi4 1.1.0',
      hardwareId: 'rpi4',
      version: '1.1.0',
      selector: { labels: { ring: 'canary' } },
      waves: [
        { percent: 10, soakSeconds: 600 },
        { percent: 100, soakSeconds: 0 },
      ],
      successThreshold: 0.95,
      failureThreshold: 0.05,
      maxAttestationAgeSeconds: 86400,
    },
  });
export type CreateRolloutRequest = z.infer<typeof createRolloutRequestSchema>;

/** The body of pause, abort and exclude: the reason, which the rollout and the audit log keep. */
export const reasonRequestSchema = z
  .strictObject({ reason: z.string().min(1).max(500) })
  .meta({ id: 'ReasonRequest', example: { reason: 'error rate on canaries' } });
export type ReasonRequest = z.infer<typeof reasonRequestSchema>;

export const waveProgressDtoSchema = z
  .object({
    wave: z.number(),
    size: z.number(),
    pending: z.number(),
    inProgress: z.number(),
    succeeded: z.number(),
    failed: z.number(),
    quarantined: z.number(),
    excluded: z.number(),
  })
  .meta({
    id: 'WaveProgress',
    example: {
      wave: 1,
      size: 12,
      pending: 0,
      inProgress: 3,
      succeeded: 9,
      failed: 0,
      quarantined: 0,
      excluded: 0,
    },
  });
export type WaveProgressDto = z.infer<typeof waveProgressDtoSchema>;

const outWindow = z.object({ start: z.string(), end: z.string() });

export const rolloutDtoSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    releaseId: z.string(),
    hardwareId: z.string(),
    version: z.string(),
    selector: z.object({
      labels: z.record(z.string(), z.string()).optional(),
      nodes: z.array(z.string()).optional(),
    }),
    waves: z.array(
      z.object({ percent: z.number().optional(), count: z.number().optional(), soakSeconds: z.number() }),
    ),
    successThreshold: z.number(),
    failureThreshold: z.number(),
    maxAttestationAgeSeconds: z.number(),
    nodeDeadlineSeconds: z.number(),
    maintenanceWindow: outWindow.nullable(),
    maxConcurrent: z.number().nullable(),
    state: z.enum(ROLLOUT_STATES),
    stateReason: z.string().nullable(),
    currentWave: z.number(),
    waveStartedAt: z.string().nullable(),
    progress: z.array(waveProgressDtoSchema),
    createdBy: z.string(),
    createdAt: z.string(),
    startedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
  })
  .meta({
    id: 'Rollout',
    example: {
      id: EXAMPLE.rolloutId,
      name: 'rpi4 1.1.0',
      releaseId: EXAMPLE.releaseId,
      hardwareId: EXAMPLE.hardware,
      version: EXAMPLE.version,
      selector: { labels: { ring: 'canary' } },
      waves: [
        { percent: 10, soakSeconds: 600 },
        { percent: 100, soakSeconds: 0 },
      ],
      successThreshold: 0.95,
      failureThreshold: 0.05,
      maxAttestationAgeSeconds: 86400,
      nodeDeadlineSeconds: 3600,
      maintenanceWindow: { start: '22:00', end: '04:00' },
      maxConcurrent: 50,
      state: 'running',
      stateReason: null,
      currentWave: 1,
      waveStartedAt: EXAMPLE.at,
      progress: [
        waveProgressDtoSchema.meta()?.example,
        {
          wave: 2,
          size: 108,
          pending: 108,
          inProgress: 0,
          succeeded: 0,
          failed: 0,
          quarantined: 0,
          excluded: 0,
        },
      ],
      createdBy: 'release-bot',
      createdAt: '2026-03-14T09:00:00.000Z',
      startedAt: EXAMPLE.at,
      finishedAt: null,
    },
  });
export type RolloutDto = z.infer<typeof rolloutDtoSchema>;

export const rolloutListDtoSchema = z
  .object({ rollouts: z.array(rolloutDtoSchema) })
  .meta({ id: 'RolloutList', example: { rollouts: [rolloutDtoSchema.meta()?.example] } });
export type RolloutListDto = z.infer<typeof rolloutListDtoSchema>;

export const rolloutNodeDtoSchema = z
  .object({
    nodeId: z.string(),
    wave: z.number(),
    state: z.enum(ROLLOUT_NODE_STATES),
    reason: z.string().nullable(),
    fromVersion: z.string().nullable(),
    admittedAt: z.string().nullable(),
    finishedAt: z.string().nullable(),
    updatedAt: z.string(),
  })
  .meta({
    id: 'RolloutNode',
    example: {
      nodeId: EXAMPLE.nodeId,
      wave: 1,
      state: 'succeeded',
      reason: null,
      fromVersion: EXAMPLE.fromVersion,
      admittedAt: EXAMPLE.at,
      finishedAt: EXAMPLE.later,
      updatedAt: EXAMPLE.later,
    },
  });
export type RolloutNodeDto = z.infer<typeof rolloutNodeDtoSchema>;

export const rolloutNodeListDtoSchema = z.object({ nodes: z.array(rolloutNodeDtoSchema) }).meta({
  id: 'RolloutNodeList',
  example: {
    nodes: [
      rolloutNodeDtoSchema.meta()?.example,
      {
        nodeId: EXAMPLE.nodeId2,
        wave: 1,
        state: 'downloading',
        reason: null,
        fromVersion: EXAMPLE.fromVersion,
        admittedAt: EXAMPLE.at,
        finishedAt: null,
        updatedAt: EXAMPLE.later,
      },
    ],
  },
});
export type RolloutNodeListDto = z.infer<typeof rolloutNodeListDtoSchema>;

/** What a node should do besides polling the director (GET /api/v1/devices/me/instructions). */
export const deviceInstructionsDtoSchema = z
  .object({ attest: z.boolean(), reason: z.string().nullable() })
  .meta({
    id: 'DeviceInstructions',
    example: { attest: true, reason: 'rollout rpi4 1.1.0 needs an attestation newer than 86400 s' },
  });
export type DeviceInstructionsDto = z.infer<typeof deviceInstructionsDtoSchema>;
