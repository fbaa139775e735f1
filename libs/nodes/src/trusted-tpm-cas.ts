import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';

/** The TPM manufacturer CA certificates EK certificates must chain to (PEM files in OTTER_TPM_CA_DIR). */
@Injectable()
export class TrustedTpmCas {
  private readonly logger = new Logger(TrustedTpmCas.name);

  constructor(@Inject(OTTER_CONFIG) private readonly config: OtterConfig) {}

  // Read on each enrollment: enrollments are rare and an operator can add a CA without a restart.
  async certificates(): Promise<string[]> {
    const dir = this.config.devices.tpmCaDir;
    let files: string[];
    try {
      files = (await readdir(dir)).filter((f) => /\.(pem|crt)$/i.test(f)).sort();
    } catch {
      this.logger.warn(`no TPM manufacturer CA directory at ${dir}: every EK certificate is untrusted`);
      return [];
    }
    const pems: string[] = [];
    for (const f of files) {
      const text = await readFile(join(dir, f), 'utf8');
      pems.push(...(text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []));
    }
    return pems;
  }
}
