import { Inject, Injectable } from '@nestjs/common';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';

/** Reference PCR values of a release, read from its signed TUF target metadata (never from an unsigned copy). */
@Injectable()
export class ReleaseMeasurements {
  constructor(@Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository) {}

  async of(hardwareId: string, version: string): Promise<Record<string, string> | undefined> {
    const target = await this.repository.signedTarget(`images/${hardwareId}/${version}`);
    if (!target) return undefined;
    const m = target.custom.measurements;
    return m && typeof m === 'object' ? (m as Record<string, string>) : {};
  }
}
