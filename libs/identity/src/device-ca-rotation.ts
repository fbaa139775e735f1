/**
 * When Otter's device CA hands over to a successor (docs/attestation.md, "Device certificates: lifetime,
 * renewal, recovery, CA rotation"). Pure: the CA class applies it to the generations it finds on disk.
 *
 *   0 ─────────── ½ ─────── ⅔ ─────────── 1   (of a CA's own lifetime)
 *   issues        │ successor │ successor issues; this CA only verifies what it issued, until that expires
 *                 │ published │
 *
 * A successor exists in the trust bundle for a sixth of the lifetime before any certificate it signed is
 * shown to a verifier, so verifiers that pin the bundle have that long to pick it up. A CA issues only while a
 * third of its lifetime is left, and a device certificate is clamped to its CA's notAfter: with
 * OTTER_DEVICE_CA_TTL at least 3 × OTTER_DEVICE_CERT_TTL (the config enforces it) nothing is ever clamped.
 */
export interface CaValidity {
  notBefore: Date;
  notAfter: Date;
}

/** A CA's successor is due once the CA has lived half its lifetime (or the CA expired: the api was down). */
export function successorDue(ca: CaValidity, now: Date): boolean {
  const start = ca.notBefore.getTime();
  return now.getTime() >= start + (ca.notAfter.getTime() - start) / 2;
}

/** Whether a CA may still sign: valid now, with at least a third of its lifetime left. */
export function mayIssue(ca: CaValidity, now: Date): boolean {
  const t = now.getTime();
  const start = ca.notBefore.getTime();
  const end = ca.notAfter.getTime();
  return t >= start && end - t >= (end - start) / 3;
}

/**
 * The index of the CA that signs now among `generations` (oldest first): the oldest that may still issue, so a
 * freshly published successor waits its turn; when none may (a successor was created late), the newest.
 */
export function issuingIndex(generations: readonly CaValidity[], now: Date): number {
  if (generations.length === 0) throw new Error('no device CA generation to issue from');
  const index = generations.findIndex((ca) => mayIssue(ca, now));
  return index === -1 ? generations.length - 1 : index;
}
