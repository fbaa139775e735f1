import { Inject, Injectable } from '@nestjs/common';
import { releaseProofPcrs } from '#otter/attestation';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import type { ReleaseDto } from '#otter/contracts';
import { ReleaseService } from '#otter/releases';
import { RolloutError } from './rollout.errors.js';

/**
 * A rollout's success is a node's attestation of the release's signed reference measurements, so a release
 * without measurements of a PCR beyond the pinned boot PCRs could never succeed honestly: it is refused at
 * create and again at start, with the reason, before any node is touched.
 */
@Injectable()
export class MeasuredReleaseCheck {
  constructor(
    private readonly releases: ReleaseService,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async require(release: Pick<ReleaseDto, 'hardwareId' | 'version'>): Promise<void> {
    const { hardwareId, version } = release;
    const signed = await this.releases.signedMeasurements(hardwareId, version);
    const measured = Object.keys(signed ?? {})
      .map(Number)
      .sort((a, b) => a - b);
    const pinned = this.config.devices.pinnedPcrs;
    if (releaseProofPcrs(measured, pinned).length > 0) return;
    const what = `release ${version} for ${hardwareId}`;
    const reason =
      signed === undefined
        ? `${what} is not signed in the image repository`
        : measured.length === 0
          ? `${what} has no signed reference measurements`
          : `${what} measures only pinned boot PCRs (${measured.join(', ')})`;
    throw new RolloutError(
      'ROLLOUT_RELEASE_UNMEASURED',
      `${reason}, so no node could prove it booted it: a rollout needs the release's reference value of a PCR ` +
        `it changes, outside the pinned PCRs ${pinned.join(', ')} (publish it with \`otter release push ` +
        '--measurements FILE`)',
      { hardwareId, version, measuredPcrs: measured, pinnedPcrs: pinned },
    );
  }
}
