import { Inject, Injectable, Optional, type OnModuleInit } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { METRICS, OtterMetrics } from '#otter/metrics';
import { freshSince } from './attestation-status.js';
import { NodeFleetRepository } from './node-fleet.repository.js';

/** The fleet's nodes gauge (the api only) and the attestation verdict counter. */
@Injectable()
export class NodeMetrics implements OnModuleInit {
  constructor(
    private readonly fleet: NodeFleetRepository,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
    @Optional() private readonly metrics?: OtterMetrics,
  ) {}

  onModuleInit(): void {
    // Both outcomes exist from the start at 0: a rate() over a series that appears later misses its first step.
    const verifications = this.metrics?.counter(METRICS.attestationVerifications);
    for (const outcome of ['passed', 'failed']) verifications?.inc({ outcome }, 0);
    if (!this.metrics?.fleet) return;
    // The node list's freshness, so a node counted `stale` here is one GET /api/v1/nodes?attestation=stale lists.
    const freshness = this.config.devices.attestationFreshness;
    this.metrics.gauge(METRICS.nodes, async (gauge) => {
      for (const c of await this.fleet.counts(freshSince(freshness, Date.now()))) {
        gauge.set(
          {
            hardware_id: c.hardwareId,
            state: c.state,
            running_version: c.runningVersion ?? '',
            attestation: c.attestation,
          },
          c.nodes,
        );
      }
    });
  }

  /** One verdict recorded (a quote verified, or an integrity failure the node reported). */
  verdict(passed: boolean): void {
    this.metrics?.counter(METRICS.attestationVerifications).inc({ outcome: passed ? 'passed' : 'failed' });
  }
}
