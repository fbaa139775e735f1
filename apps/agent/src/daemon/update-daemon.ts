import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { SlotManager, otherSlot, type Slot } from '#otter/boot-env';
import { UPDATE_REPORT_LIMITS, type UpdateReport, type UpdateStep } from '#otter/contracts';
import { checkDirectorAssignment, installTarget, recordInstalledRelease } from '#otter/tuf-client';
import { AGENT_VERSION } from '../agent-version.js';
import { DeviceAgent } from '../device/device-agent.js';
import type { DeviceApi } from '../device/device-api.js';
import type { InventoryContext } from '../inventory/collect-inventory.js';
import { InventoryReporter } from '../inventory/inventory-reporter.js';
import type { InventorySources } from '../inventory/inventory-sources.js';
import { readSlotVersions, recordSlotVersion } from '../inventory/slot-versions.js';
import { CertificateRenewer } from './certificate-renewer.js';
import { clipText } from './clip-text.js';
import type { Rebooter } from './rebooter.js';
import { isPermanentRefusal } from './permanent-refusal.js';
import { ReportOutbox } from './report-outbox.js';
import {
  clearPendingUpdate,
  readPendingUpdate,
  writePendingUpdate,
  type PendingUpdate,
} from './update-journal.js';

const run = promisify(execFile);

export interface UpdateDaemonOptions {
  stateDir: string;
  imageRootPath: string;
  directorRootPath: string;
  slots: Record<Slot, string>;
  slotManager: SlotManager;
  rebooter: Rebooter;
  /** Shell command run after a trial boot; exit 0 = healthy. None: healthy. */
  healthCommand?: string;
  /** Measure the booted slot into the TPM (a node without a measuring bootloader: swtpm in tests, the demo). */
  simulateMeasuredBoot: boolean;
  /** What the inventory reads about the machine (kernel, OS, sizes, device labels). */
  inventorySources: InventorySources;
  /** The boot environment's kind, for the inventory. */
  bootEnvKind: InventoryContext['bootEnv'];
  log: (event: Record<string, unknown>) => void;
}

/** What one poll did, for the loop's log and for tests. */
export type CycleOutcome =
  | 'idle'
  | 'attested'
  | 'installed-and-rebooted'
  | 'committed'
  | 'rolled-back'
  | 'install-failed'
  | 'rebooted';

/**
 * One node's update loop: poll the director (both repositories verified by a fresh tuf-js updater each time),
 * install into the inactive slot, try it once, and after the trial boot measure, attest and health-check,
 * then commit or roll back. Every step is reported. All state lives in the boot environment and
 * `update.json`, so the daemon may be killed and restarted at any point and carries on from there. The device
 * certificate is renewed ahead of its expiry on the way (CertificateRenewer).
 */
export class UpdateDaemon {
  private readonly outbox: ReportOutbox;
  private readonly renewer: CertificateRenewer;
  private readonly inventory: InventoryReporter;

  constructor(
    private readonly agent: DeviceAgent,
    private readonly options: UpdateDaemonOptions,
  ) {
    this.outbox = new ReportOutbox(options.stateDir);
    this.renewer = new CertificateRenewer(agent, options.log);
    this.inventory = new InventoryReporter(options.stateDir, options.inventorySources, options.log);
  }

  async cycle(): Promise<CycleOutcome> {
    const slots = this.options.slotManager;
    // First: a certificate that lapsed while the node was off is renewed before anything else is tried.
    await this.renewer.beforePoll();
    const api = await this.agent.authenticatedApi();
    await this.outbox.flush(
      (report) => api.reportUpdate(report),
      (report, error) =>
        this.options.log({ event: 'report-dropped', step: report.step, error: describe(error) }),
    );
    const status = await slots.status();
    const pending = await readPendingUpdate(this.options.stateDir);
    const booted = status.booted ?? status.committed;
    if (this.options.simulateMeasuredBoot) await this.agent.measureBootedSlot(this.options.slots[booted]);
    // Checked every cycle, sent only when it changed (a failed send never holds up the update).
    await this.inventory.reportIfChanged(api, await this.inventoryContext(booted));

    if (pending && status.boot === 'trial') return this.verifyTrial(api, pending, booted);
    if (pending && status.boot === 'rolled-back') {
      await slots.rollback('trial-slot-did-not-boot');
      await clearPendingUpdate(this.options.stateDir);
      await this.report(api, pending, 'rolled-back', {
        detail: 'the trial slot did not come up; the bootloader fell back',
      });
      return 'rolled-back';
    }
    if (status.boot === 'trial-scheduled' || status.boot === 'uncommitted') {
      // Killed between scheduling the trial (or a rollback) and the reboot: reboot now.
      if (pending) await this.report(api, pending, 'rebooting');
      await this.options.rebooter.reboot();
      return 'rebooted';
    }
    if (status.boot === 'rolled-back') await slots.rollback('trial-slot-did-not-boot');

    let outcome: CycleOutcome = 'idle';
    const instructions = await api.instructions();
    if (instructions.attest) {
      const verdict = await this.agent.attest();
      this.options.log({
        event: 'attested',
        passed: verdict.passed,
        reason: verdict.reason,
        asked: instructions.reason,
      });
      outcome = 'attested';
    }
    const decision = await checkDirectorAssignment({
      serverUrl: this.agent.server,
      nodeId: this.agent.nodeId!,
      hardwareId: this.agent.hardwareId,
      authorize: (url) => api.authorize('GET', url),
      imageTrustedRootPath: this.options.imageRootPath,
      directorTrustedRootPath: this.options.directorRootPath,
      stateDir: this.options.stateDir,
      runningVersion: this.agent.runningVersion,
    });
    if (decision.action !== 'install') return outcome;
    return this.install(api, decision.target, booted);
  }

  private async inventoryContext(booted: Slot): Promise<InventoryContext> {
    let recorded = await readSlotVersions(this.options.stateDir);
    // The slot the node was provisioned with holds what it enrolled with: recorded the first time, so it is
    // still known once the node runs the other slot.
    const running = this.agent.runningVersion;
    if (recorded[booted] === null && running) {
      await recordSlotVersion(this.options.stateDir, booted, running);
      recorded = { ...recorded, [booted]: running };
    }
    return {
      bootEnv: this.options.bootEnvKind,
      activeSlot: booted,
      slotVersions: recorded,
      agentVersion: AGENT_VERSION,
    };
  }

  private async install(
    api: DeviceApi,
    target: {
      image: { path: string; length: number; sha256: string };
      releaseVersion: string;
      correlationId: string | null;
    },
    booted: Slot,
  ): Promise<CycleOutcome> {
    const slot = otherSlot(booted);
    const base = {
      targetPath: target.image.path,
      version: target.releaseVersion,
      sha256: target.image.sha256,
      length: target.image.length,
      rolloutId: target.correlationId,
      slot,
    };
    const say = (step: UpdateStep, extra: Partial<UpdateReport> = {}): Promise<void> =>
      this.send(api, { step, version: base.version, rolloutId: base.rolloutId ?? undefined, ...extra });
    await say('assigned', { detail: base.targetPath });
    await say('downloading');
    let result;
    try {
      result = await installTarget({
        serverUrl: this.agent.server,
        trustedRootPath: this.options.imageRootPath,
        targetPath: base.targetPath,
        currentFile: this.options.slots[booted],
        outFile: this.options.slots[slot],
        stateDir: this.options.stateDir,
        expectedImage: { length: base.length, sha256: base.sha256 },
        reportDownload: (report) => api.reportDownload(report),
      });
    } catch (error) {
      await say('failed', { detail: `install: ${error instanceof Error ? error.message : String(error)}` });
      return 'install-failed';
    }
    await recordSlotVersion(this.options.stateDir, slot, base.version);
    const pending: PendingUpdate = {
      ...base,
      method: result.method,
      bytesDownloaded: result.bytesDownloaded,
      startedAt: new Date().toISOString(),
    };
    await say('installed', {
      slot,
      // The bytes of the image or delta installed from (Otter bounds it by the image); the detail has them all.
      bytes: result.sourceBytesDownloaded,
      detail: `${result.method}, ${result.bytesDownloaded} of ${result.length} bytes downloaded`,
    });
    await writePendingUpdate(this.options.stateDir, pending);
    await this.options.slotManager.beginTrial(slot);
    await say('rebooting', { slot });
    await this.options.rebooter.reboot();
    return 'installed-and-rebooted';
  }

  /** Running the trial slot: the node's own TPM must prove the new release booted, and it must be healthy. */
  private async verifyTrial(api: DeviceApi, pending: PendingUpdate, booted: Slot): Promise<CycleOutcome> {
    await this.report(api, pending, 'booted', { slot: booted });
    const verdict = await this.agent.attest(pending.version, { remember: false });
    if (verdict.passed) await this.report(api, pending, 'attested', { detail: verdict.reason });
    const health = verdict.passed
      ? await this.healthCheck()
      : { ok: false, detail: `attestation failed: ${verdict.reason}` };
    if (verdict.passed && health.ok) {
      await this.options.slotManager.commit();
      await recordInstalledRelease(this.options.stateDir, {
        targetPath: pending.targetPath,
        releaseVersion: pending.version,
        sha256: pending.sha256,
      });
      await this.agent.rememberRunningVersion(pending.version);
      await clearPendingUpdate(this.options.stateDir);
      await this.report(api, pending, 'committed', { slot: booted });
      return 'committed';
    }
    await this.options.slotManager.rollback(verdict.passed ? 'health-check-failed' : 'attestation-failed');
    await clearPendingUpdate(this.options.stateDir);
    await this.report(api, pending, 'rolled-back', { detail: health.detail });
    // Back to the committed slot; its measurement is the old release's again after the reboot.
    await this.options.rebooter.reboot();
    if (this.options.simulateMeasuredBoot) {
      const status = await this.options.slotManager.status();
      await this.agent.measureBootedSlot(this.options.slots[status.booted ?? status.committed]);
    }
    // Attest what runs now (the version from before the trial), so Otter sees the node healthy again.
    await this.agent.attest(this.agent.runningVersion).catch(() => undefined);
    return 'rolled-back';
  }

  private async healthCheck(): Promise<{ ok: boolean; detail: string }> {
    if (!this.options.healthCommand) return { ok: true, detail: 'no health check configured' };
    try {
      await run('/bin/sh', ['-c', this.options.healthCommand], { timeout: 60_000 });
      return { ok: true, detail: 'health check passed' };
    } catch (error) {
      const e = error as { code?: unknown; stderr?: unknown };
      const stderr = typeof e.stderr === 'string' ? e.stderr.trim().slice(0, 200) : '';
      return {
        ok: false,
        detail: `health check failed (exit ${String(e.code)})${stderr ? `: ${stderr}` : ''}`,
      };
    }
  }

  /** A step of the update in flight, with the access token this poll already holds. */
  private report(
    api: DeviceApi,
    pending: PendingUpdate,
    step: UpdateStep,
    extra: Partial<UpdateReport> = {},
  ): Promise<void> {
    return this.send(api, {
      step,
      version: pending.version,
      rolloutId: pending.rolloutId ?? undefined,
      ...extra,
    });
  }

  /** Sends a report; one that cannot be sent now waits in the outbox, and the update carries on. */
  private async send(api: DeviceApi, report: Omit<UpdateReport, 'at'>): Promise<void> {
    const full: UpdateReport = { ...report, at: new Date().toISOString() };
    // Otter refuses a longer detail outright, and a refused report would wait in the outbox for ever; an error
    // message or a health check's output can be any length.
    if (full.detail !== undefined) full.detail = clipText(full.detail, UPDATE_REPORT_LIMITS.detail);
    this.options.log({ event: 'update', ...full });
    try {
      await api.reportUpdate(full);
    } catch (error) {
      if (isPermanentRefusal(error)) {
        this.options.log({ event: 'report-dropped', step: full.step, error: describe(error) });
        return;
      }
      this.options.log({ event: 'report-deferred', step: full.step, error: describe(error) });
      await this.outbox.add(full);
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
