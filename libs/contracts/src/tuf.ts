import { z } from 'zod';
import { EXAMPLE } from './example-values.js';

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
  .meta({
    id: 'TufOnlineKey',
    example: {
      role: 'targets',
      keyId: EXAMPLE.keyId,
      key: {
        keytype: 'ed25519',
        scheme: 'ed25519',
        keyval: { public: '8f3a1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8' },
      },
      createdAt: EXAMPLE.at,
      active: true,
    },
  });
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
  .meta({
    id: 'TufOnlineKeys',
    example: {
      keys: [tufOnlineKeyDtoSchema.meta()?.example],
      next: {
        targets: [
          {
            keytype: 'ed25519',
            scheme: 'ed25519',
            keyval: { public: '8f3a1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8' },
          },
        ],
        snapshot: [],
        timestamp: [],
      },
    },
  });
export type TufOnlineKeysDto = z.infer<typeof tufOnlineKeysDtoSchema>;

/** `POST /api/v1/tuf/image/root` answer; 422 TUF_ROOT_REJECTED with `details.problems` otherwise. */
export const publishedRootDtoSchema = z
  .object({ version: z.number(), expires: z.string() })
  .meta({ id: 'PublishedRoot', example: { version: 3, expires: '2027-03-14T00:00:00Z' } });
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
  .meta({
    id: 'SignedRoot',
    example: {
      signatures: [
        {
          keyid: EXAMPLE.keyId,
          sig: 'a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90',
        },
      ],
      signed: {
        _type: 'root',
        spec_version: '1.0.31',
        version: 3,
        expires: '2027-03-14T00:00:00Z',
        consistent_snapshot: true,
        keys: {},
        roles: {},
      },
    },
  });
export type RootEnvelope = z.infer<typeof rootEnvelopeSchema>;

/** The `:role` of an online key rotation. */
export const onlineRoleParamSchema = z.enum(ONLINE_ROLE_NAMES, {
  error: `role must be one of ${ONLINE_ROLE_NAMES.join(', ')}`,
});
