import { z } from 'zod';
import {
  deviceText,
  HARDWARE_ID_PATTERN,
  LABEL_PATTERN,
  maintenanceWindowProblem,
  UPDATE_REPORT_LIMITS,
  UPDATE_STEPS,
  WINDOW_TIME_PATTERN,
  type CreateRolloutRequest,
  type UpdateReport,
} from '#otter/contracts';

const label = z.string().regex(LABEL_PATTERN, 'a label key or value: [A-Za-z0-9._/-], 1..63 characters');
const hhmm = z.string().regex(WINDOW_TIME_PATTERN, 'a UTC time as HH:MM');
const share = z.number().gt(0).max(1);

const wave = z
  .object({
    percent: z.number().gt(0).max(100).optional(),
    count: z.number().int().min(1).max(10_000_000).optional(),
    soakSeconds: z
      .number()
      .int()
      .min(0)
      .max(30 * 86_400),
  })
  .strict()
  .refine((w) => (w.percent === undefined) !== (w.count === undefined), 'a wave has either percent or count');

export const createRolloutRequest: z.ZodType<CreateRolloutRequest> = z
  .object({
    name: z.string().min(1).max(100),
    hardwareId: z.string().regex(HARDWARE_ID_PATTERN, 'not a valid hardware id'),
    version: z.string().min(1).max(64),
    selector: z
      .object({
        labels: z.record(label, label).optional(),
        nodes: z.array(z.uuid()).min(1).max(100_000).optional(),
      })
      .strict(),
    waves: z.array(wave).min(1).max(20),
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
    maintenanceWindow: z
      .object({ start: hhmm, end: hhmm })
      .strict()
      .superRefine((window, ctx) => {
        const problem = maintenanceWindowProblem(window);
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .nullable()
      .optional(),
    maxConcurrent: z.number().int().min(1).max(1_000_000).nullable().optional(),
  })
  .strict();

export const reasonRequest = z.object({ reason: z.string().min(1).max(500) }).strict();

export const updateReport: z.ZodType<UpdateReport> = z
  .object({
    step: z.enum(UPDATE_STEPS),
    version: deviceText(UPDATE_REPORT_LIMITS.version).min(1),
    rolloutId: z.uuid().optional(),
    // At most the release's image (UpdateProgressService checks the release); a safe integer before that.
    bytes: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    slot: deviceText(UPDATE_REPORT_LIMITS.slot).min(1).optional(),
    detail: deviceText(UPDATE_REPORT_LIMITS.detail).optional(),
    at: z.iso.datetime(),
  })
  .strict();
