import type { Kysely } from 'kysely';
import type { Migration } from 'kysely/migration';
import { ekIssuerSerialSha256, ekKeySha256, parseTpm2bPublic } from '#otter/tpm-wire';

/** The columns this migration reads and writes, as they are when it runs. */
type Tables = {
  nodes: {
    id: string;
    state: string;
    ek_public_sha256: string;
    ek_cert_issuer: string;
    ek_cert_serial: string;
    ek_key_sha256: string | null;
    ek_issuer_serial_sha256: string | null;
    created_at: string;
    updated_at: string;
  };
  enrollments: { ek_public: string; ek_public_sha256: string; state: string };
};

/**
 * One TPM, one node (issue 9): a node is named by its TPM's EK key (sha256 of the SubjectPublicKeyInfo) and by
 * its EK certificate's issuer + serial, each unique; a re-enrollment window an admin opens for one node; the
 * node an enrollment re-enrolls.
 *
 * Existing nodes get both names from what enrollment stored: the EK public area of their activated
 * enrollment, and the issuer and serial on the node. Before this migration a TPM could enroll again as a new
 * node by changing bytes of its EK public area that do not change the key, so two nodes may share a TPM. The
 * oldest keeps the names; a later node with the same EK key is that attack, and is revoked (unless already
 * revoked or rejected). A later node whose certificate issuer + serial was already seen but whose key differs
 * is another TPM under a reused serial: it keeps its key and its state, and loses only the certificate name.
 * A node whose enrollment record is gone keeps a NULL key (it is still named by issuer + serial).
 */
export const tpmIdentityMigration: Migration = {
  async up(untyped: Kysely<unknown>) {
    await untyped.schema.alterTable('nodes').addColumn('ek_key_sha256', 'text').execute();
    await untyped.schema.alterTable('nodes').addColumn('ek_issuer_serial_sha256', 'text').execute();
    // Set by `otter node re-enroll`: until then the node's own TPM may enroll again, once, into this row.
    await untyped.schema.alterTable('nodes').addColumn('reenroll_until', 'text').execute();
    await untyped.schema.alterTable('nodes').addColumn('reenroll_by', 'text').execute();
    await untyped.schema.alterTable('enrollments').addColumn('reenroll_node_id', 'text').execute();

    const db = untyped.withTables<Tables>();
    const areas = new Map<string, string>();
    for (const e of await db
      .selectFrom('enrollments')
      .select(['ek_public_sha256', 'ek_public'])
      .where('state', '=', 'activated')
      .execute()) {
      areas.set(e.ek_public_sha256, e.ek_public);
    }
    const nodes = await db
      .selectFrom('nodes')
      .select(['id', 'state', 'ek_public_sha256', 'ek_cert_issuer', 'ek_cert_serial'])
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    const keys = new Set<string>();
    const certificates = new Set<string>();
    const now = new Date().toISOString();
    for (const node of nodes) {
      const key = keyOf(areas.get(node.ek_public_sha256));
      const certificate = ekIssuerSerialSha256(node.ek_cert_issuer, node.ek_cert_serial);
      const sameTpm = key !== null && keys.has(key);
      const reusedCertificate = certificates.has(certificate);
      if (key !== null && !sameTpm) keys.add(key);
      if (!reusedCertificate && !sameTpm) certificates.add(certificate);
      const outOfAction = node.state === 'revoked' || node.state === 'rejected';
      await db
        .updateTable('nodes')
        .set({
          ek_key_sha256: sameTpm ? null : key,
          ek_issuer_serial_sha256: sameTpm || reusedCertificate ? null : certificate,
          ...(sameTpm && !outOfAction && { state: 'revoked', updated_at: now }),
        })
        .where('id', '=', node.id)
        .execute();
    }

    await untyped.schema.createIndex('nodes_ek_key').on('nodes').column('ek_key_sha256').unique().execute();
    await untyped.schema
      .createIndex('nodes_ek_issuer_serial')
      .on('nodes')
      .column('ek_issuer_serial_sha256')
      .unique()
      .execute();
  },
};

/** The canonical EK key of a stored TPM2B_PUBLIC (base64), or null when there is none or it does not parse. */
function keyOf(area: string | undefined): string | null {
  if (area === undefined) return null;
  try {
    return ekKeySha256(parseTpm2bPublic(Buffer.from(area, 'base64')));
  } catch {
    return null;
  }
}
