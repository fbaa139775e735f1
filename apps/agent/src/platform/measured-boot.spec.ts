import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSoftwareTpm, Tpm2Tools, type SoftwareTpm } from '#otter/tpm';
import { parseTpmsAttest } from '#otter/tpm-wire';
import { expectedPcrAfterBoot, SimulatedMeasuredBoot } from './measured-boot.js';

describe('expectedPcrAfterBoot', () => {
  it('is SHA-256 of the reset value followed by the image digest', () => {
    const image = createHash('sha256').update('os-2.4.0.img').digest();
    expect(expectedPcrAfterBoot(image.toString('hex'))).toBe(
      createHash('sha256')
        .update(Buffer.concat([Buffer.alloc(32), image]))
        .digest('hex'),
    );
    // PCRs 17–22 reset to all-ones.
    expect(expectedPcrAfterBoot(image.toString('hex'), 17)).toBe(
      createHash('sha256')
        .update(Buffer.concat([Buffer.alloc(32, 0xff), image]))
        .digest('hex'),
    );
    expect(() => expectedPcrAfterBoot('not-a-digest')).toThrow(/64 hex/);
  });
});

describe('SimulatedMeasuredBoot on swtpm', () => {
  let tpm: SoftwareTpm;
  let dir: string;
  let tools: Tpm2Tools;
  let slotA: string;
  let slotB: string;

  beforeAll(async () => {
    tpm = await startSoftwareTpm();
    dir = await mkdtemp(join(tmpdir(), 'otter-measured-boot-'));
    tools = new Tpm2Tools({ tcti: tpm.tcti, stateDir: join(dir, 'agent-state') });
    slotA = join(dir, 'slot-a.img');
    slotB = join(dir, 'slot-b.img');
    await writeFile(slotA, randomBytes(3 * 1024 * 1024));
    await writeFile(slotB, randomBytes(1024));
  });

  afterAll(async () => {
    await tpm?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('extends PCR 9 with the booted image so that it equals the reference measurement, once per boot', async () => {
    const boot = new SimulatedMeasuredBoot(tools);
    const { pcr, digest } = await boot.measureBootedSlot(slotA);
    expect(pcr).toBe(9);
    expect(digest).toBe(createHash('sha256').update(readFileSync(slotA)).digest('hex'));
    expect((await tools.readPcrs([9]))[9]).toBe(expectedPcrAfterBoot(digest));

    // An agent restarted within the same boot does not measure twice.
    await new SimulatedMeasuredBoot(tools).measureBootedSlot(slotA);
    expect((await tools.readPcrs([9]))[9]).toBe(expectedPcrAfterBoot(digest));

    // The quote a verifier receives carries exactly that value.
    await tools.createAttestationKey();
    const quote = await tools.quote(randomBytes(16), [9]);
    expect(quote.pcrValues[9]).toBe(expectedPcrAfterBoot(digest));
    expect(parseTpmsAttest(quote.attest).type).toBe('quote');
  });

  it('a boot of another image cannot reach the reference value of the first', async () => {
    const reference = expectedPcrAfterBoot(
      (await new SimulatedMeasuredBoot(tools).measureBootedSlot(slotA)).digest,
    );
    await tpm.restart({ clean: false });
    expect((await tools.readPcrs([9]))[9]).toBe('0'.repeat(64));
    const { digest } = await new SimulatedMeasuredBoot(tools).measureBootedSlot(slotB);
    const pcr9 = (await tools.readPcrs([9]))[9];
    expect(pcr9).toBe(expectedPcrAfterBoot(digest));
    expect(pcr9).not.toBe(reference);
    // Measuring the expected image on top (an attacker "re-measuring" after boot) does not give it either.
    await tools.extendPcr(9, createHash('sha256').update(readFileSync(slotA)).digest('hex'));
    expect((await tools.readPcrs([9]))[9]).not.toBe(reference);
  });

  it('uses the configured PCR', async () => {
    const { pcr, digest } = await new SimulatedMeasuredBoot(tools, 14).measureBootedSlot(slotB);
    expect(pcr).toBe(14);
    expect((await tools.readPcrs([14]))[14]).toBe(expectedPcrAfterBoot(digest, 14));
  });
});
