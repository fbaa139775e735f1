import { Inject, Injectable, Logger } from '@nestjs/common';
import { AuditService } from '#otter/audit';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { RetentionRepository } from './retention.repository.js';

/** Rows one purge deleted, per table. */
export interface PurgeReport {
  reports: number;
  verdicts: number;
  downloads: number;
  enrollments: number;
  /** Audit rows past OTTER_AUDIT_RETENTION_DAYS (0 while that is off, the default). */
  audit: number;
}

/**
 * The scheduler's periodic purge by age (OTTER_RETENTION_EVERY): device reports, verdicts and download
 * records past their OTTER_RETENTION_*_MAX_AGE, and enrollments OTTER_RETENTION_ENROLLMENTS_MAX_AGE after they
 * expired, and the audit log past OTTER_AUDIT_RETENTION_DAYS when that is set. Idempotent, so two schedulers purging at once only share the work.
 */
@Injectable()
export class RetentionService {
  private readonly logger = new Logger(RetentionService.name);

  constructor(
    private readonly retention: RetentionRepository,
    private readonly audit: AuditService,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async purge(now: Date = new Date()): Promise<PurgeReport> {
    const r = this.config.retention;
    const before = (seconds: number): string => new Date(now.getTime() - seconds * 1000).toISOString();
    const report: PurgeReport = {
      reports: await this.retention.purgeReports(before(r.reports.maxAgeSeconds)),
      verdicts: await this.retention.purgeVerdicts(before(r.verdicts.maxAgeSeconds)),
      downloads: await this.retention.purgeDownloads(before(r.downloads.maxAgeSeconds)),
      enrollments: await this.retention.purgeEnrollments(before(r.enrollmentsMaxAgeSeconds)),
      audit: await this.audit.purge(now),
    };
    if (Object.values(report).some((n) => n > 0)) this.logger.log({ ...report }, 'retention purge');
    return report;
  }
}
