import { z } from 'zod';
import { EXAMPLE } from './example-values.js';
import { auditEntryDto } from './audit.js';
import { deviceText } from './device-text.js';
import { LABEL_PATTERN, MAX_NODE_LABELS, nodeDtoSchema } from './devices.js';

/**
 * A node's whole story: what its agent reports about itself (PUT /api/v1/devices/me/inventory), the operator
 * page of nodes (GET /api/v1/nodes) and one node's detail (GET /api/v1/nodes/:id). Zod schemas, so validation
 * and the OpenAPI document come from one place.
 */

/** The longest text a node may put in its inventory; longer is refused (400), never cut. */
export const NODE_INVENTORY_LIMITS = {
  short: 64,
  text: 256,
  deviceLabelValue: 256,
  deviceLabels: MAX_NODE_LABELS,
} as const;

/** Bytes up to 2^53 - 1 (what a JSON number holds exactly): any disk or memory size there is. */
const byteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const text = deviceText(NODE_INVENTORY_LIMITS.text);
const short = deviceText(NODE_INVENTORY_LIMITS.short);
const slot = z.enum(['a', 'b']);

/**
 * Labels the device sets about itself from a local file (`deviceLabels`). They are the device's word, kept
 * apart from the operator's `labels` (which rollout selectors match): a node cannot put itself into a rollout.
 */
export const deviceLabelsSchema = z
  .record(z.string(), deviceText(NODE_INVENTORY_LIMITS.deviceLabelValue))
  .superRefine((labels, ctx) => {
    const keys = Object.keys(labels);
    for (const key of keys) {
      if (!LABEL_PATTERN.test(key)) {
        ctx.addIssue({
          code: 'custom',
          path: [key],
          message: 'a label key: [A-Za-z0-9] then [A-Za-z0-9._/-], 1..63 characters',
        });
      }
    }
    if (keys.length > NODE_INVENTORY_LIMITS.deviceLabels) {
      ctx.addIssue({
        code: 'custom',
        message: `at most ${NODE_INVENTORY_LIMITS.deviceLabels} device labels (got ${keys.length})`,
      });
    }
  });

/** What the agent knows about its node. Every field is required; what it could not read is null. */
export const nodeInventorySchema = z.strictObject({
  /** `uname -r`. */
  kernel: text.nullable(),
  /** /etc/os-release. */
  os: z.strictObject({ prettyName: text.nullable(), id: short.nullable(), versionId: short.nullable() }),
  /** The boot loader that reads the boot environment: `u-boot`, `grub`, or `simulated` (a file). */
  bootLoader: short.nullable(),
  /** The boot environment's kind as the agent was configured: `uboot`, `grub` or `file`. */
  bootEnv: short.nullable(),
  /** The slot the node booted. */
  activeSlot: slot.nullable(),
  /** The release each slot holds, as far as the agent knows (null: unknown or empty). */
  slots: z.strictObject({
    a: z.strictObject({ version: short.nullable() }),
    b: z.strictObject({ version: short.nullable() }),
  }),
  diskBytes: byteCount.nullable(),
  memoryBytes: byteCount.nullable(),
  agentVersion: short,
  deviceLabels: deviceLabelsSchema,
});
export type NodeInventory = z.infer<typeof nodeInventorySchema>;

const INVENTORY_EXAMPLE: NodeInventory = {
  kernel: '6.6.21-v8+',
  os: { prettyName: 'Otter OS 1.1.0 (bookworm)', id: 'otteros', versionId: '1.1.0' },
  bootLoader: 'u-boot',
  bootEnv: 'uboot',
  activeSlot: 'b',
  slots: { a: { version: EXAMPLE.fromVersion }, b: { version: EXAMPLE.version } },
  diskBytes: 31914983424,
  memoryBytes: 4294967296,
  agentVersion: '0.9.2',
  deviceLabels: { cabinet: 'c12' },
};

/** PUT /api/v1/devices/me/inventory: the node's inventory as of `at`; replaces the one stored before. */
export const inventoryReportSchema = z
  .strictObject({ inventory: nodeInventorySchema, at: z.iso.datetime() })
  .meta({ example: { inventory: INVENTORY_EXAMPLE, at: EXAMPLE.at } });
export type InventoryReport = z.infer<typeof inventoryReportSchema>;

export const inventoryReceiptSchema = z
  .object({
    /** Hex sha256 of the stored inventory (canonical JSON). */
    sha256: z.string(),
    receivedAt: z.string(),
  })
  .meta({
    example: {
      sha256: 'd2a84f4b8b650937ec8f73cd8be2c74add5a911ba64df27458ed8229da804a26',
      receivedAt: EXAMPLE.later,
    },
  });
export type InventoryReceipt = z.infer<typeof inventoryReceiptSchema>;

/**
 * A node's attestation status in the list filter and the detail: `passed` (its last verdict passed within the
 * freshness, OTTER_ATTESTATION_FRESHNESS), `stale` (passed, longer ago), `failed` (its last verdict failed,
 * however old: a failure stays until the node attests clean), `never` (no verdict).
 */
export const ATTESTATION_STATUSES = ['passed', 'failed', 'stale', 'never'] as const;
export type AttestationStatus = (typeof ATTESTATION_STATUSES)[number];

/** The most nodes one page holds, and how many it holds when the caller does not say. */
export const NODE_PAGE_LIMITS = { default: 100, max: 1000 } as const;

/** A duration: a whole number of seconds, minutes, hours or days (`90s`, `15m`, `1h`, `7d`). */
export const DURATION_PATTERN = /^([1-9]\d{0,6})([smhd])$/;
const DURATION_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** Seconds of a DURATION_PATTERN text, or undefined when it is not one. */
export function durationSeconds(text: string): number | undefined {
  const m = DURATION_PATTERN.exec(text);
  return m ? Number(m[1]) * DURATION_SECONDS[m[2] as keyof typeof DURATION_SECONDS] : undefined;
}

const duration = z
  .string()
  .regex(DURATION_PATTERN, 'a duration like 90s, 15m, 1h or 7d')
  .transform((t) => durationSeconds(t)!);

const labelFilter = z
  .string()
  .max(130)
  .transform((text, ctx) => {
    const eq = text.indexOf('=');
    const key = text.slice(0, eq);
    const value = text.slice(eq + 1);
    if (eq < 0 || !LABEL_PATTERN.test(key) || !LABEL_PATTERN.test(value)) {
      ctx.addIssue({ code: 'custom', message: `key=value with a valid label key and value, not ${text}` });
      return z.NEVER;
    }
    return { key, value };
  });

/**
 * GET /api/v1/nodes query. Every filter narrows (AND); `label` may be repeated. Pages are ordered by
 * (createdAt, id), oldest first; `cursor` is the previous page's `nextCursor`, opaque.
 */
export const nodeListQuerySchema = z.strictObject({
  limit: z.coerce.number().int().min(1).max(NODE_PAGE_LIMITS.max).default(NODE_PAGE_LIMITS.default),
  cursor: z.string().max(200).optional(),
  hardware: z.string().max(64).optional(),
  state: nodeDtoSchema.shape.state.optional(),
  version: z.string().max(80).optional(),
  label: z
    .union([labelFilter, z.array(labelFilter).max(8, 'at most 8 label filters')])
    .transform((l) => (Array.isArray(l) ? l : [l]))
    .optional(),
  attestation: z.enum(ATTESTATION_STATUSES).optional(),
  seenWithin: duration.optional(),
  notSeenFor: duration.optional(),
  /** A prefix of the node id (lowercase hex and dashes). */
  q: z
    .string()
    .regex(/^[0-9a-f-]{1,36}$/, 'a node id prefix: lowercase hex and dashes')
    .optional(),
});
export type NodeListQuery = z.infer<typeof nodeListQuerySchema>;

export const nodeListDtoSchema = z
  .object({
    nodes: z.array(nodeDtoSchema),
    /** Pass as `cursor` for the next page; null on the last page. */
    nextCursor: z.string().nullable(),
  })
  .meta({
    id: 'NodeList',
    example: {
      nodes: [nodeDtoSchema.meta()?.example],
      nextCursor: 'MjAyNi0wMi0wMVQxMjowMDowMC4wMDBafDNmMmI4YzFl',
    },
  });
export type NodeListDto = z.infer<typeof nodeListDtoSchema>;

export const pcrMismatchSchema = z.object({
  pcr: z.number(),
  quoted: z.string().nullable(),
  reference: z.string(),
  /** Whose reference: the node's pinned boot state or the release's signed measurements. */
  source: z.enum(['pinned', 'reference']),
});
export type PcrMismatchDto = z.infer<typeof pcrMismatchSchema>;

export const verdictSummarySchema = z.object({
  passed: z.boolean(),
  reason: z.string(),
  at: z.string(),
  releaseVersion: z.string().nullable(),
  releaseProven: z.boolean(),
  /** Each PCR that differed from its reference; null for verdicts stored before Otter kept them. */
  mismatches: z.array(pcrMismatchSchema).nullable(),
});
export type VerdictSummaryDto = z.infer<typeof verdictSummarySchema>;

export const updateStepSchema = z.object({
  step: z.string(),
  ok: z.boolean(),
  version: z.string().nullable(),
  bytes: z.number().nullable(),
  detail: z.string(),
  /** The agent's time of the step, and Otter's time it arrived. */
  reportedAt: z.string(),
  receivedAt: z.string(),
});

export const downloadSchema = z.object({
  version: z.string(),
  method: z.enum(['delta', 'full']),
  bytesDownloaded: z.number(),
  fullBytes: z.number(),
  at: z.string(),
});
export type NodeDownloadDto = z.infer<typeof downloadSchema>;

export const rolloutMembershipSchema = z.object({
  rolloutId: z.string(),
  name: z.string(),
  rolloutState: z.string(),
  version: z.string().nullable(),
  wave: z.number(),
  state: z.string(),
  reason: z.string().nullable(),
  fromVersion: z.string().nullable(),
  admittedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  updatedAt: z.string(),
});
export type RolloutMembershipDto = z.infer<typeof rolloutMembershipSchema>;

/** How many of each history the detail holds (newest first). */
export const NODE_HISTORY_LIMITS = {
  verdicts: 20,
  updateSteps: 50,
  downloads: 20,
  rollouts: 20,
  auditEntries: 20,
} as const;

export const nodeDetailDtoSchema = z
  .object({
    node: nodeDtoSchema,
    identity: z.object({
      ekCertIssuer: z.string(),
      ekCertSerial: z.string(),
      ekKeySha256: z.string().nullable(),
      /** Otter's AKs have no certificate and so no expiry: an AK is trusted until the node re-enrolls. */
      akPublicSha256: z.string(),
      deviceCertSerial: z.string().nullable(),
      deviceCertNotAfter: z.string().nullable(),
    }),
    inventory: z
      .object({
        reportedAt: z.string(),
        receivedAt: z.string(),
        sha256: z.string(),
        value: nodeInventorySchema,
      })
      .nullable(),
    attestation: z.object({
      status: z.enum(ATTESTATION_STATUSES),
      freshnessSeconds: z.number(),
      last: verdictSummarySchema.nullable(),
      /** The newest verdicts, at most NODE_HISTORY_LIMITS.verdicts. */
      history: z.array(verdictSummarySchema),
    }),
    updates: z.object({ steps: z.array(updateStepSchema), downloads: z.array(downloadSchema) }),
    rollouts: z.array(rolloutMembershipSchema),
    /** The newest audit rows whose target is this node (at most NODE_HISTORY_LIMITS.auditEntries): who did what. */
    audit: z.object({
      entries: z.array(auditEntryDto),
      /** The cursor of `GET /api/v1/audit?target=node:<id>` for older rows; null when there are none. */
      nextCursor: z.string().nullable(),
    }),
  })
  .meta({
    example: {
      node: nodeDtoSchema.meta()?.example,
      identity: {
        ekCertIssuer: 'CN=Infineon OPTIGA(TM) RSA Manufacturing CA 003,O=Infineon Technologies AG,C=DE',
        ekCertSerial: '43:61:74:02',
        ekKeySha256: 'a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3',
        akPublicSha256: 'b3a8e0e1f9ab1bfe3a36f231f676f78bb30a519d2b21e6c530c0eee8ebb4a5d0',
        deviceCertSerial: '2b6f1a9c0d3e',
        deviceCertNotAfter: '2026-06-12T09:26:53.000Z',
      },
      inventory: {
        reportedAt: EXAMPLE.at,
        receivedAt: EXAMPLE.at,
        sha256: 'd2a84f4b8b650937ec8f73cd8be2c74add5a911ba64df27458ed8229da804a26',
        value: INVENTORY_EXAMPLE,
      },
      attestation: {
        status: 'passed',
        freshnessSeconds: 86400,
        last: {
          passed: true,
          reason: 'quote matches the pinned PCRs and the release reference measurements',
          at: EXAMPLE.at,
          releaseVersion: EXAMPLE.version,
          releaseProven: true,
          mismatches: null,
        },
        history: [
          {
            passed: true,
            reason: 'quote matches the pinned PCRs and the release reference measurements',
            at: EXAMPLE.at,
            releaseVersion: EXAMPLE.version,
            releaseProven: true,
            mismatches: null,
          },
          {
            passed: false,
            reason: 'PCR 4 differs from the reference of 1.1.0',
            at: '2026-03-13T22:10:00.000Z',
            releaseVersion: EXAMPLE.version,
            releaseProven: false,
            mismatches: [
              { pcr: 4, quoted: EXAMPLE.fromSha256, reference: EXAMPLE.pcrSha256, source: 'reference' },
            ],
          },
        ],
      },
      updates: {
        steps: [
          {
            step: 'installed',
            ok: true,
            version: EXAMPLE.version,
            bytes: 18874368,
            detail: 'written to slot b, verified sha256',
            reportedAt: EXAMPLE.at,
            receivedAt: EXAMPLE.at,
          },
        ],
        downloads: [
          {
            version: EXAMPLE.version,
            method: 'delta',
            bytesDownloaded: 18874368,
            fullBytes: 268435456,
            at: EXAMPLE.at,
          },
        ],
      },
      rollouts: [
        {
          rolloutId: EXAMPLE.rolloutId,
          name: 'rpi4 1.1.0',
          rolloutState: 'running',
          version: EXAMPLE.version,
          wave: 1,
          state: 'succeeded',
          reason: null,
          fromVersion: EXAMPLE.fromVersion,
          admittedAt: EXAMPLE.at,
          finishedAt: EXAMPLE.later,
          updatedAt: EXAMPLE.later,
        },
      ],
      audit: {
        entries: [
          {
            id: 4790,
            at: '2026-02-01T12:05:00.000Z',
            actor: { tokenId: EXAMPLE.tokenId, name: 'ops', role: 'admin' },
            action: 'node.approved',
            target: { kind: 'node', id: EXAMPLE.nodeId },
            requestId: 'req-1b2c3d',
            source: '203.0.113.7',
            outcome: 'ok',
            changes: { state: 'approved' },
          },
        ],
        nextCursor: null,
      },
    },
  });
export type NodeDetailDto = z.infer<typeof nodeDetailDtoSchema>;
