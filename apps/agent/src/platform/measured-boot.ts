import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import type { Tpm2Tools } from '#otter/tpm';

/** PCR that holds the measurement of the booted OS slot (the first PCR the PC Client profile leaves to the OS loader). */
export const BOOTED_SLOT_PCR = 9;

/** Records which slot image booted, in a PCR, so a TPM quote can prove it to the server. */
export interface MeasuredBoot {
  measureBootedSlot(slotImagePath: string): Promise<{ pcr: number; digest: string }>;
}

/**
 * Measured boot done by the agent, after the OS is up. On a real node the firmware or bootloader measures the
 * slot image into the PCR before the OS runs, so nothing the OS does can change what was measured; here the agent
 * does the same extend itself (a node on swtpm has no measuring bootloader). It proves the attestation path end
 * to end, not that the image booted was unmodified.
 */
export class SimulatedMeasuredBoot implements MeasuredBoot {
  constructor(
    private readonly tpm: Pick<Tpm2Tools, 'extendPcr' | 'readPcrs'>,
    private readonly pcr: number = BOOTED_SLOT_PCR,
  ) {}

  async measureBootedSlot(slotImagePath: string): Promise<{ pcr: number; digest: string }> {
    const digest = await sha256File(slotImagePath);
    // Firmware measures once per power cycle; an agent restarted within the same boot must not extend again,
    // or the PCR would no longer match the release's reference value.
    const current = (await this.tpm.readPcrs([this.pcr]))[this.pcr];
    if (current !== expectedPcrAfterBoot(digest, this.pcr)) await this.tpm.extendPcr(this.pcr, digest);
    return { pcr: this.pcr, digest };
  }
}

/**
 * The PCR value after a boot that measured only the slot image: SHA-256(reset value ‖ image digest). This is
 * the reference measurement a release must carry for that PCR. PCRs 17–22 reset to all-ones, the others to zero.
 */
export function expectedPcrAfterBoot(imageSha256: string, pcr: number = BOOTED_SLOT_PCR): string {
  if (!/^[0-9a-f]{64}$/i.test(imageSha256))
    throw new Error('image digest must be 64 hex characters of SHA-256');
  const reset = Buffer.alloc(32, pcr >= 17 && pcr <= 22 ? 0xff : 0x00);
  return createHash('sha256')
    .update(Buffer.concat([reset, Buffer.from(imageSha256, 'hex')]))
    .digest('hex');
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}
