import { z } from 'zod';

/** TUF administration contract (`/api/v1/tuf/image/...`, admin tokens only). */
export const ONLINE_ROLE_NAMES = ['targets', 'snapshot', 'timestamp'] as const;
export type OnlineRoleName = (typeof ONLINE_ROLE_NAMES)[number];

/** Otter signs with ed25519 only. */
export const tufPublicKeyJsonSchema = z
  .object({
    keytype: z.literal('ed25519'),
    scheme: z.literal('ed25519'),
    keyval: z.object({ public: z.string() }),
  })
  .meta({ id: 'TufPublicKey' });
export type TufPublicKeyJson = z.infer<typeof tufPublicKeyJsonSchema>;

/** One online signing key the server holds (`GET /api/v1/tuf/image/online-keys`). */
export const tufOnlineKeyDtoSchema = z
  .object({
    role: z.enum(ONLINE_ROLE_NAMES),
    keyId: z.string(),
    key: tufPublicKeyJsonSchema,
    createdAt: z.string(),
    /** Listed for its role in the current root. */
    active: z.boolean(),
  })
  .meta({ id: 'TufOnlineKey' });
export type TufOnlineKeyDto = z.infer<typeof tufOnlineKeyDtoSchema>;

export const tufOnlineKeysDtoSchema = z
  .object({
    keys: z.array(tufOnlineKeyDtoSchema),
    /** What the next root should list for each online role (the newest key per role). */
    next: z.object({
      targets: z.array(tufPublicKeyJsonSchema),
      snapshot: z.array(tufPublicKeyJsonSchema),
      timestamp: z.array(tufPublicKeyJsonSchema),
    }),
  })
  .meta({ id: 'TufOnlineKeys' });
export type TufOnlineKeysDto = z.infer<typeof tufOnlineKeysDtoSchema>;

/** `POST /api/v1/tuf/image/root` answer; 422 TUF_ROOT_REJECTED with `details.problems` otherwise. */
export const publishedRootDtoSchema = z
  .object({ version: z.number(), expires: z.string() })
  .meta({ id: 'PublishedRoot' });
export type PublishedRootDto = z.infer<typeof publishedRootDtoSchema>;

/**
 * What the root ceremony's server side (image and director alike) accepts, and the current root it answers:
 * a signed TUF envelope. Nothing in `signed` is trusted until the repository has checked it.
 */
export const rootEnvelopeSchema = z
  .strictObject({
    signatures: z
      .array(
        z.strictObject({ keyid: z.string().regex(/^[0-9a-f]{64}$/), sig: z.string().regex(/^[0-9a-f]+$/) }),
      )
      .max(64),
    signed: z.record(z.string(), z.unknown()),
  })
  .meta({ id: 'SignedRoot' });
export type RootEnvelope = z.infer<typeof rootEnvelopeSchema>;

/** The `:role` of an online key rotation. */
export const onlineRoleParamSchema = z.enum(ONLINE_ROLE_NAMES, {
  error: `role must be one of ${ONLINE_ROLE_NAMES.join(', ')}`,
});
