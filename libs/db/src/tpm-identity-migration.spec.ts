import { createHash, generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { ekIssuerSerialSha256 } from '#otter/tpm-wire';
import { createDatabase, isUniqueViolation, migrateToLatest } from './create-database.js';
import { migrateTo, testDatabases, testNodeRow } from './testing.js';

const dbs = await testDatabases();
afterAll(async () => Promise.all(dbs.map((d) => d.drop())));

const POLICY_A_SHA256 = '837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa';

/** An RSA 2048 EK public area of template L-1 around `modulus`, with the exponent field as given. */
function rsaEkArea(modulus: Buffer, exponentField: number): Buffer {
  const exponent = Buffer.alloc(4);
  exponent.writeUInt32BE(exponentField);
  const tpmt = Buffer.concat([
    Buffer.from(`0001000b000300b20020${POLICY_A_SHA256}00060080004300100800`, 'hex'),
    exponent,
    Buffer.from('0100', 'hex'),
    modulus,
  ]);
  const size = Buffer.alloc(2);
  size.writeUInt16BE(tpmt.length);
  return Buffer.concat([size, tpmt]);
}

function rsaKey(): { modulus: Buffer; keySha256: string } {
  const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    modulus: Buffer.from(publicKey.export({ format: 'jwk' }).n!, 'base64url'),
    keySha256: createHash('sha256')
      .update(publicKey.export({ type: 'spki', format: 'der' }))
      .digest('hex'),
  };
}

describe.each(dbs)('0005_tpm_identity on $name', ({ config }) => {
  it('names existing nodes by EK key and issuer + serial, revokes a second node of one TPM, and keeps both unique', async () => {
    const db = createDatabase(config);
    try {
      await migrateTo(db, '0004_rollouts', config.dialect === 'postgres');
      const tpmA = rsaKey();
      const tpmB = rsaKey();
      const issuer = 'CN=Test TPM Manufacturer';
      const areas = {
        original: rsaEkArea(tpmA.modulus, 0),
        // The attack this migration closes: the same TPM, its exponent spelled out, enrolled as a new node.
        respelled: rsaEkArea(tpmA.modulus, 65537),
        other: rsaEkArea(tpmB.modulus, 0),
      };
      const sha = (area: Buffer): string => createHash('sha256').update(area.subarray(2)).digest('hex');
      const node = (id: string, state: string, area: Buffer | null, serial: string, minutesAgo: number) => ({
        ...testNodeRow({ id, state, createdAt: new Date(Date.now() - minutesAgo * 60_000).toISOString() }),
        ek_public_sha256: area ? sha(area) : createHash('sha256').update(id).digest('hex'),
        ek_cert_issuer: issuer,
        ek_cert_serial: serial,
      });
      const enrollment = (area: Buffer) => ({
        id: randomUUID(),
        hardware_id: 'rpi4',
        ek_kind: 'rsa',
        ek_public: area.toString('base64'),
        ek_public_sha256: sha(area),
        ek_cert_serial: '0a',
        ek_cert_issuer: issuer,
        ak_public: '',
        secret_sha256: '',
        nonce: '',
        running_version: null,
        attempts: 0,
        state: 'activated',
        expires_at: new Date().toISOString(),
        created_at: new Date().toISOString(),
      });
      const ids = {
        revoked: randomUUID(),
        attacker: randomUUID(),
        reusedSerial: randomUUID(),
        unrecorded: randomUUID(),
      };
      // Rows as they were before 0005: without its columns.
      const pre = db.withTables<{ nodes: Record<string, unknown>; enrollments: Record<string, unknown> }>();
      const legacy = (row: ReturnType<typeof node>): Record<string, unknown> => {
        const copy: Record<string, unknown> = { ...row };
        for (const column of ['ek_key_sha256', 'ek_issuer_serial_sha256', 'reenroll_until', 'reenroll_by'])
          delete copy[column];
        return copy;
      };
      await pre
        .insertInto('nodes')
        .values([
          legacy(node(ids.revoked, 'revoked', areas.original, '0a', 30)),
          legacy(node(ids.attacker, 'active', areas.respelled, '0a', 20)),
          legacy(node(ids.reusedSerial, 'active', areas.other, '0a', 10)),
          legacy(node(ids.unrecorded, 'active', null, '0b', 5)),
        ])
        .execute();
      await pre
        .insertInto('enrollments')
        .values([areas.original, areas.respelled, areas.other].map(enrollment))
        .execute();

      await migrateToLatest(db);

      const rows = await db
        .selectFrom('nodes')
        .select(['id', 'state', 'ek_key_sha256', 'ek_issuer_serial_sha256', 'reenroll_until'])
        .execute();
      const byId = Object.fromEntries(rows.map((r) => [r.id, r]));
      const certificate = ekIssuerSerialSha256(issuer, '0a');
      expect(byId[ids.revoked]).toEqual({
        id: ids.revoked,
        state: 'revoked',
        ek_key_sha256: tpmA.keySha256,
        ek_issuer_serial_sha256: certificate,
        reenroll_until: null,
      });
      // The same key under another spelling: the second node of TPM A, revoked.
      expect(byId[ids.attacker]).toMatchObject({
        state: 'revoked',
        ek_key_sha256: null,
        ek_issuer_serial_sha256: null,
      });
      // Another TPM under a serial already seen: keeps its key and its state, not the certificate name.
      expect(byId[ids.reusedSerial]).toMatchObject({
        state: 'active',
        ek_key_sha256: tpmB.keySha256,
        ek_issuer_serial_sha256: null,
      });
      expect(byId[ids.unrecorded]).toMatchObject({
        state: 'active',
        ek_key_sha256: null,
        ek_issuer_serial_sha256: ekIssuerSerialSha256(issuer, '0b'),
      });

      // Both names are unique from now on, in both dialects.
      for (const clash of [{ ek_key_sha256: tpmA.keySha256 }, { ek_issuer_serial_sha256: certificate }]) {
        const error = await db
          .insertInto('nodes')
          .values({ ...testNodeRow(), ...clash })
          .execute()
          .catch((e: unknown) => e);
        expect(isUniqueViolation(error)).toBe(true);
      }
      // NULLs do not clash.
      await db
        .insertInto('nodes')
        .values({ ...testNodeRow(), ek_key_sha256: null, ek_issuer_serial_sha256: null })
        .execute();
    } finally {
      await db.destroy();
    }
  });
});
