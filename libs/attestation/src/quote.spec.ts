import { createHash, randomBytes } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, type SoftwareTpm } from '#otter/tpm';
import {
  parseTpm2bPublic,
  parseTpmsAttest,
  publicKeyObject,
  verifyQuote,
  type TpmCounters,
  type TpmPublic,
} from './index.js';
import { attestationErrorCode, Tpm2Tools } from './testing.js';
import { CLOCK_FALLBACK_TOLERANCE_MS } from './quote.js';

const AK = '0x81010020';
const OTHER_AK = '0x81010021';
const DEVICE_KEY = '0x81010030';
const QUOTED = [0, 1, 2, 3, 4, 5, 6, 7, 9];
const SELECTION = 'sha256:0,1,2,3,4,5,6,7,9';

describe('verifyQuote against a real TPM (swtpm)', () => {
  let tpm: SoftwareTpm;
  let tools: Tpm2Tools;
  let ak: TpmPublic;
  let deviceKey: TpmPublic;

  beforeAll(async () => {
    tpm = await startSoftwareTpm();
    tools = await Tpm2Tools.create(tpm.tcti);
    await tools.createEndorsementPrimary();
    ak = parseTpm2bPublic(await tools.createKey('ak', AK));
    await tools.createKey('ak', OTHER_AK);
    deviceKey = parseTpm2bPublic(await tools.createKey('device', DEVICE_KEY));
    // Distinct values in every quoted PCR, so that order and substitution change the digest.
    for (const pcr of QUOTED) await tools.pcrExtend(pcr, sha256Hex(`measurement ${pcr}`));
  });

  afterAll(async () => {
    await tpm?.stop();
    await tools?.cleanup();
  });

  async function freshQuote(selection = SELECTION, pcrs = QUOTED, key = AK) {
    const nonce = randomBytes(32);
    const quote = await tools.quote(key, selection, nonce);
    return { nonce, ...quote, pcrValues: await tools.pcrValues(pcrs) };
  }

  it('accepts a real quote and reports the TPM counters unobfuscated (AK in the endorsement hierarchy)', async () => {
    const q = await freshQuote();
    const result = verifyQuote({
      akPublic: ak,
      attest: q.attest,
      signature: q.signature,
      expectedNonce: q.nonce,
      pcrValues: q.pcrValues,
      requiredPcrs: [0, 7, 9],
    });
    expect(result.pcrs).toEqual(QUOTED);
    const clock = await tools.run('tpm2_readclock', []);
    expect(clock).toContain(`reset_count: ${result.resetCount}`);
    expect(clock).toContain(`restart_count: ${result.restartCount}`);
    expect(result.clock).toBeGreaterThan(0n);

    // The same with the AK as a (cached) KeyObject.
    expect(
      verifyQuote({
        akPublic: publicKeyObject(ak),
        attest: q.attest,
        signature: q.signature,
        expectedNonce: q.nonce,
        pcrValues: q.pcrValues,
      }).pcrs,
    ).toEqual(QUOTED);
  });

  it('refuses a quote made for another nonce (replay)', async () => {
    const q = await freshQuote();
    const input = { akPublic: ak, attest: q.attest, signature: q.signature, pcrValues: q.pcrValues };
    expect(attestationErrorCode(() => verifyQuote({ ...input, expectedNonce: randomBytes(32) }))).toBe(
      'QUOTE_NONCE_MISMATCH',
    );
    // A prefix of the right nonce is not the nonce.
    expect(
      attestationErrorCode(() => verifyQuote({ ...input, expectedNonce: q.nonce.subarray(0, 16) })),
    ).toBe('QUOTE_NONCE_MISMATCH');
  });

  it('refuses an attest with any byte changed after signing', async () => {
    const q = await freshQuote();
    const verifyWith = (attest: Buffer) => () =>
      verifyQuote({
        akPublic: ak,
        attest,
        signature: q.signature,
        expectedNonce: q.nonce,
        pcrValues: q.pcrValues,
      });
    const parsed = parseTpmsAttest(q.attest);
    // Last byte: inside pcrDigest. The forger would also have to change the digest to match new PCR values.
    expect(attestationErrorCode(verifyWith(flip(q.attest, q.attest.length - 1)))).toBe(
      'QUOTE_SIGNATURE_INVALID',
    );
    // The clock field (after magic, type, qualifiedSigner and extraData): a forged "newer" TPM state.
    const clockOffset = 4 + 2 + 2 + parsed.qualifiedSigner.length + 2 + parsed.extraData.length + 7;
    expect(attestationErrorCode(verifyWith(flip(q.attest, clockOffset)))).toBe('QUOTE_SIGNATURE_INVALID');
    expect(attestationErrorCode(verifyWith(flip(q.attest, 0)))).toBe('QUOTE_BAD_MAGIC');
    const asCertify = Buffer.from(q.attest);
    asCertify.writeUInt16BE(0x8017, 4);
    expect(attestationErrorCode(verifyWith(asCertify))).toBe('QUOTE_WRONG_TYPE');
    expect(attestationErrorCode(verifyWith(q.attest.subarray(0, q.attest.length - 1)))).toBe(
      'QUOTE_MALFORMED',
    );
  });

  it('refuses a quote signed by another key', async () => {
    const q = await freshQuote();
    // A genuine quote from another AK of the same TPM, presented as this AK's.
    const other = await tools.quote(OTHER_AK, SELECTION, q.nonce);
    expect(
      attestationErrorCode(() =>
        verifyQuote({ akPublic: ak, ...other, expectedNonce: q.nonce, pcrValues: q.pcrValues }),
      ),
    ).toBe('QUOTE_SIGNATURE_INVALID');
    // This AK's attest with the other AK's signature.
    expect(
      attestationErrorCode(() =>
        verifyQuote({
          akPublic: ak,
          attest: q.attest,
          signature: other.signature,
          expectedNonce: q.nonce,
          pcrValues: q.pcrValues,
        }),
      ),
    ).toBe('QUOTE_SIGNATURE_INVALID');
    // An unrestricted TPM key signs anything, including a forged TPMS_ATTEST: valid signature, no evidence.
    const forged = await tools.sign(DEVICE_KEY, q.attest);
    expect(
      attestationErrorCode(() =>
        verifyQuote({
          akPublic: ak,
          attest: q.attest,
          signature: forged,
          expectedNonce: q.nonce,
          pcrValues: q.pcrValues,
        }),
      ),
    ).toBe('QUOTE_SIGNATURE_INVALID');
    expect(
      attestationErrorCode(() =>
        verifyQuote({
          akPublic: deviceKey,
          attest: q.attest,
          signature: forged,
          expectedNonce: q.nonce,
          pcrValues: q.pcrValues,
        }),
      ),
    ).toBe('AK_REJECTED');
  });

  it('refuses PCR values that differ from what was quoted', async () => {
    const q = await freshQuote();
    const base = { akPublic: ak, attest: q.attest, signature: q.signature, expectedNonce: q.nonce };
    // The device reports a value it would like PCR 4 to have.
    const lied = { ...q.pcrValues, 4: sha256Hex('the measurement policy wants') };
    expect(attestationErrorCode(() => verifyQuote({ ...base, pcrValues: lied }))).toBe(
      'QUOTE_PCR_DIGEST_MISMATCH',
    );
    // The PCR really changes after the quote (e.g. a new kernel measured): the old quote does not cover it.
    await tools.pcrExtend(9, sha256Hex('later measurement'));
    const now = await tools.pcrValues(QUOTED);
    expect(now[9]).not.toBe(q.pcrValues[9]);
    expect(attestationErrorCode(() => verifyQuote({ ...base, pcrValues: now }))).toBe(
      'QUOTE_PCR_DIGEST_MISMATCH',
    );
  });

  it('hashes PCR values in the signed selection order, whatever order they are given in', async () => {
    // Two selections, the second lower: the TPM hashes PCR 9, then 0, then 1.
    const q = await freshQuote('sha256:9+sha256:0,1', [0, 1, 9]);
    const parsed = parseTpmsAttest(q.attest);
    expect(parsed.quote?.selection.map((s) => s.pcrs)).toEqual([[9], [0, 1]]);
    const ascending = createHash('sha256')
      .update(Buffer.from(q.pcrValues[0]! + q.pcrValues[1]! + q.pcrValues[9]!, 'hex'))
      .digest();
    expect(ascending.equals(parsed.quote!.pcrDigest)).toBe(false);

    const base = { akPublic: ak, attest: q.attest, signature: q.signature, expectedNonce: q.nonce };
    const reversedInsertion: Record<number, string> = {};
    for (const pcr of [9, 1, 0]) reversedInsertion[pcr] = q.pcrValues[pcr]!;
    expect(verifyQuote({ ...base, pcrValues: reversedInsertion }).pcrs).toEqual([9, 0, 1]);

    // Swapping which PCR a value belongs to changes what is hashed where: refused.
    const swapped = { 0: q.pcrValues[1]!, 1: q.pcrValues[0]!, 9: q.pcrValues[9]! };
    expect(attestationErrorCode(() => verifyQuote({ ...base, pcrValues: swapped }))).toBe(
      'QUOTE_PCR_DIGEST_MISMATCH',
    );
  });

  it('refuses a selection that misses a required PCR, or values for PCRs the quote did not select', async () => {
    const q = await freshQuote('sha256:0,1,2,3,4,5,6,7', QUOTED.slice(0, 8));
    const base = { akPublic: ak, attest: q.attest, signature: q.signature, expectedNonce: q.nonce };
    expect(verifyQuote({ ...base, pcrValues: q.pcrValues, requiredPcrs: [0, 7] }).pcrs).toHaveLength(8);
    expect(
      attestationErrorCode(() => verifyQuote({ ...base, pcrValues: q.pcrValues, requiredPcrs: [0, 7, 9] })),
    ).toBe('QUOTE_SELECTION_MISMATCH');
    // An extra value the quote says nothing about must not be accepted as attested.
    const extra = { ...q.pcrValues, ...(await tools.pcrValues([9])) };
    expect(attestationErrorCode(() => verifyQuote({ ...base, pcrValues: extra }))).toBe(
      'QUOTE_SELECTION_MISMATCH',
    );
    // Leaving out a quoted PCR's value.
    const { 3: _dropped, ...fewer } = q.pcrValues;
    expect(attestationErrorCode(() => verifyQuote({ ...base, pcrValues: fewer }))).toBe(
      'QUOTE_SELECTION_MISMATCH',
    );
    // Malformed values are malformed, not silently ignored.
    expect(attestationErrorCode(() => verifyQuote({ ...base, pcrValues: { ...q.pcrValues, 0: 'zz' } }))).toBe(
      'QUOTE_MALFORMED',
    );
  });

  it('refuses counters that went backwards: older quote within a boot, across a reboot, and a restored TPM state', async () => {
    const verify = (q: Awaited<ReturnType<typeof freshQuote>>, previous?: TpmCounters) =>
      verifyQuote({
        akPublic: ak,
        attest: q.attest,
        signature: q.signature,
        expectedNonce: q.nonce,
        pcrValues: q.pcrValues,
        previous,
      });

    const first = await freshQuote();
    const a = verify(first);
    // Snapshot of the TPM's persistent state, as an attacker with disk access to a software/firmware TPM could take.
    const snapshot = join(tools.dir, 'permall.snapshot');
    await copyFile(join(tpm.stateDir, 'tpm2-00.permall'), snapshot);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const second = await freshQuote();
    const b = verify(second, a);
    expect(b.resetCount).toBe(a.resetCount);
    expect(b.clock).toBeGreaterThan(a.clock);
    // The older quote presented after the newer one was accepted: clock went backwards within the boot.
    expect(attestationErrorCode(() => verify(first, b))).toBe('QUOTE_COUNTER_ROLLBACK');
    // The same with counters as a database returns them (clock as a decimal string).
    expect(attestationErrorCode(() => verify(first, { ...b, clock: b.clock.toString() }))).toBe(
      'QUOTE_COUNTER_ROLLBACK',
    );
    // Same reset, lower restartCount.
    expect(attestationErrorCode(() => verify(second, { ...b, restartCount: b.restartCount + 1 }))).toBe(
      'QUOTE_COUNTER_ROLLBACK',
    );

    // An orderly reboot: resetCount grows, so a lower clock would still be fine.
    await tpm.restart({ clean: true });
    const third = await freshQuote();
    const c = verify(third, b);
    expect(c.resetCount).toBe(b.resetCount + 1);
    expect(attestationErrorCode(() => verify(second, c))).toBe('QUOTE_COUNTER_ROLLBACK');

    // The attack: restore the snapshot and power-cycle. The TPM boots from the old state; its quotes are
    // genuine and fresh (right nonce, valid signature) but its counters are behind what was already seen.
    await copyFile(snapshot, join(tpm.stateDir, 'tpm2-00.permall'));
    await tpm.restart({ clean: false });
    const restored = await freshQuote();
    const r = verify(restored);
    expect(r.resetCount).toBeLessThanOrEqual(c.resetCount);
    expect(attestationErrorCode(() => verify(restored, c))).toBe('QUOTE_COUNTER_ROLLBACK');
    expect(r.safe).toBe(false);

    // Clock behind with a higher resetCount is what a real power loss looks like while the TPM says safe = NO
    // (its clock may repeat values)...
    const beforePowerLoss = { resetCount: r.resetCount - 1, restartCount: 0, clock: r.clock + 60_000n };
    expect(verify(restored, beforePowerLoss).resetCount).toBe(r.resetCount);
    // ...and, with safe = YES, a clock a few seconds behind: swtpm reports that after power losses that lost its
    // latest NV clock save (its clock update interval is 4 s), and a firmware TPM could as well.
    expect(c.safe).toBe(true);
    const justBefore = { resetCount: c.resetCount - 1, restartCount: 0, clock: c.clock + 3_000n };
    expect(verify(third, justBefore).resetCount).toBe(c.resetCount);
    const atTolerance = { ...justBefore, clock: c.clock + CLOCK_FALLBACK_TOLERANCE_MS };
    expect(verify(third, atTolerance).resetCount).toBe(c.resetCount);
    // Further behind than a power loss explains, with safe = YES: the TPM's state was rolled back.
    const seenLater = { ...justBefore, clock: c.clock + CLOCK_FALLBACK_TOLERANCE_MS + 1n };
    expect(attestationErrorCode(() => verify(third, seenLater))).toBe('QUOTE_COUNTER_ROLLBACK');
  });
});

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function flip(bytes: Buffer, offset: number): Buffer {
  const copy = Buffer.from(bytes);
  copy[offset]! ^= 0x01;
  return copy;
}
