import 'reflect-metadata';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RootSigned, SignedEnvelope } from '#otter/tuf-signing';
import { startApi, type ApiHarness } from '../testing/api-harness.js';

// Both repositories check a root uploaded to the ceremony's server side with one piece of code
// (#otter/tuf-signing): each hostile root below is refused by both alike, and neither stores anything.

const REPOSITORIES = [
  { name: 'image', code: 'TUF_ROOT_REJECTED' },
  { name: 'director', code: 'DIRECTOR_ROOT_REJECTED' },
] as const;

/** The next version of `root`, spoiled by `spoil`; signatures do not matter, the checks fail first. */
type Spoil = (next: Record<string, unknown> & RootSigned) => void;

const HOSTILE: Array<{ what: string; spoil: Spoil; problem: string }> = [
  {
    what: 'a key entry that is null',
    spoil: (next) => Object.assign(next.keys, { ['0'.repeat(64)]: null }),
    problem: `key ${'0'.repeat(12)} is not an ed25519 key`,
  },
  {
    what: 'a role naming a key id every object answers to (toString)',
    spoil: (next) => {
      next.roles.root = { keyids: ['toString'], threshold: 1 };
    },
    problem: 'role root names a key that is not in keys',
  },
];

describe('publishing a hostile root, to either repository', () => {
  let api: ApiHarness;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => api?.close());

  describe.each(REPOSITORIES)('the $name repository', ({ name, code }) => {
    it.each(HOSTILE)(
      'refuses $what with 422, naming the problem, and keeps its root',
      async ({ spoil, problem }) => {
        const before = await api.admin<SignedEnvelope<RootSigned>>('GET', `/api/v1/tuf/${name}/root`);
        const next = structuredClone(before.signed) as Record<string, unknown> & RootSigned;
        next.version = before.signed.version + 1;
        spoil(next);
        const refused = api.admin('POST', `/api/v1/tuf/${name}/root`, { signatures: [], signed: next });
        await expect(refused).rejects.toThrow(`422 `);
        await expect(refused).rejects.toThrow(code);
        await expect(refused).rejects.toThrow(problem);
        expect(await api.admin('GET', `/api/v1/tuf/${name}/root`)).toEqual(before);
      },
    );
  });
});
