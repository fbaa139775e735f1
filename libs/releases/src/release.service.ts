import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditService } from '#otter/audit';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import type { ReleaseDto } from '#otter/contracts';
import { isUniqueViolation } from '#otter/db';
import { OtterError } from '#otter/errors';
import { BLOB_STORE, type BlobStore } from '#otter/storage';
import { IMAGE_REPOSITORY, type TufRepository } from '#otter/tuf';
import { ReleaseEvents } from './release-events.js';
import { targetPathOf, type ReleaseFields } from './release-fields.js';
import { ReleaseError } from './release.errors.js';
import { ReleaseRepository } from './release.repository.js';

/**
 * Publishing a release: validate, stream the image into the blob store while hashing it, sign it into the
 * image repository as `images/{hardware}/{version}`, then record it. Nothing is signed until the whole image
 * is stored and measured; a failure at any step leaves no blob and no target behind.
 */
@Injectable()
export class ReleaseService {
  private readonly logger = new Logger(ReleaseService.name);

  constructor(
    private readonly releases: ReleaseRepository,
    @Inject(BLOB_STORE) private readonly blobs: BlobStore,
    @Inject(IMAGE_REPOSITORY) private readonly repository: TufRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
    private readonly events: ReleaseEvents,
    private readonly audit: AuditService,
  ) {}

  byId(id: string): Promise<ReleaseDto | undefined> {
    return this.releases.byId(id);
  }

  find(hardwareId: string, version: string): Promise<ReleaseDto | undefined> {
    return this.releases.find(hardwareId, version);
  }

  /**
   * The reference PCR values signed into the release's TUF target `images/{hardware}/{version}`, never the
   * unsigned copy in its row: `{}` when it was signed without measurements, undefined when no such target is
   * signed. What attestation checks a node against, and what a rollout needs before it may start.
   */
  async signedMeasurements(hardwareId: string, version: string): Promise<Record<string, string> | undefined> {
    const target = await this.repository.signedTarget(targetPathOf(hardwareId, version));
    if (!target) return undefined;
    const m = target.custom.measurements;
    return m && typeof m === 'object' && !Array.isArray(m) ? (m as Record<string, string>) : {};
  }

  /** Refuses a duplicate before a single image byte is read. */
  async assertCanCreate(fields: ReleaseFields): Promise<void> {
    if (await this.releases.exists(fields.hardware, fields.version)) throw duplicate(fields);
    try {
      await this.repository.assertNewTargetPath(targetPathOf(fields.hardware, fields.version));
    } catch (e) {
      if (e instanceof OtterError && e.code === 'TUF_CONFLICT') throw duplicate(fields);
      throw e;
    }
  }

  async create(fields: ReleaseFields, image: Readable, createdBy: string): Promise<ReleaseDto> {
    await this.assertCanCreate(fields);
    const id = randomUUID();
    const blobKey = `images/${fields.hardware}/${id}`;
    const stored = await this.blobs.put(blobKey, image, { maxBytes: this.config.maxUploadBytes });
    const targetPath = targetPathOf(fields.hardware, fields.version);
    try {
      if (stored.length === 0)
        throw new ReleaseError('RELEASE_INVALID', 'image: the image is empty', { field: 'image' });
      await this.repository.addTargets([
        {
          path: targetPath,
          length: stored.length,
          sha256: stored.sha256,
          blobKey,
          custom: { hardware: fields.hardware, version: fields.version, measurements: fields.measurements },
        },
      ]);
    } catch (e) {
      await this.blobs.delete(blobKey).catch(() => undefined);
      if (e instanceof OtterError && e.code === 'TUF_CONFLICT') throw duplicate(fields);
      throw e;
    }
    let release: ReleaseDto;
    try {
      // The release row records the stored image and its signed target: its audit row commits with it.
      release = await this.audit.commitWith(
        () =>
          this.releases.insert({
            id,
            hardwareId: fields.hardware,
            version: fields.version,
            targetPath,
            sha256: stored.sha256,
            length: stored.length,
            measurements: fields.measurements,
            notes: fields.notes,
            createdBy,
            blobKey,
          }),
        (r) => ({
          action: 'release.pushed',
          target: { kind: 'release', id: r.id },
          changes: { hardwareId: r.hardwareId, version: r.version, sha256: r.sha256, length: r.length },
        }),
      );
      this.logger.log(
        { release: id, targetPath, length: stored.length, sha256: stored.sha256 },
        'release published',
      );
    } catch (e) {
      // The target is signed and served; only the listing row is missing, and the signed target is what agents trust.
      if (isUniqueViolation(e)) throw duplicate(fields);
      throw e;
    }
    await this.events.published(release);
    return release;
  }

  list(hardware?: string): Promise<ReleaseDto[]> {
    return this.releases.list(hardware);
  }
}

function duplicate(fields: ReleaseFields): ReleaseError {
  return new ReleaseError(
    'RELEASE_DUPLICATE',
    `release ${fields.version} for ${fields.hardware} already exists`,
    {
      hardware: fields.hardware,
      version: fields.version,
    },
  );
}
