import 'reflect-metadata';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { X509Certificate } from '@peculiar/x509';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';

/** Larger than any CA bundle a TPM vendor ships; a bigger file in the directory is a mistake. */
const MAX_CA_FILE_BYTES = 1024 * 1024;

/**
 * The TPM manufacturer CA certificates EK certificates must chain to (PEM files in OTTER_TPM_CA_DIR). Read and
 * parsed once at boot and again on SIGHUP, never per request: an unauthenticated enrollment flood must not
 * turn into a flood of directory reads. The set is replaced whole or not at all: a reload that finds an
 * unreadable file, or a file with no certificate or a broken one, keeps the set in use and logs why. At boot
 * the same problem stops the api, so a typo is seen at once.
 */
@Injectable()
export class TrustedTpmCas implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(TrustedTpmCas.name);
  private current: readonly X509Certificate[] = [];
  private readonly onHangup = (): void => void this.reload();

  constructor(@Inject(OTTER_CONFIG) private readonly config: OtterConfig) {}

  async onModuleInit(): Promise<void> {
    this.current = await this.load();
  }

  onApplicationBootstrap(): void {
    process.on('SIGHUP', this.onHangup);
  }

  onApplicationShutdown(): void {
    process.off('SIGHUP', this.onHangup);
  }

  /** The trusted CA certificates, as last loaded. */
  certificates(): readonly X509Certificate[] {
    return this.current;
  }

  /** Reads the directory again; true when the new set is in use, false when the old one was kept. */
  async reload(): Promise<boolean> {
    try {
      this.current = await this.load();
      return true;
    } catch (e) {
      this.logger.error(
        { dir: this.config.devices.tpmCaDir, reason: (e as Error).message, kept: this.current.length },
        'TPM manufacturer CAs not reloaded: the previous set stays in use',
      );
      return false;
    }
  }

  private async load(): Promise<X509Certificate[]> {
    const dir = this.config.devices.tpmCaDir;
    let files: string[];
    try {
      files = (await readdir(dir)).filter((f) => /\.(pem|crt)$/i.test(f)).sort();
    } catch {
      this.logger.warn(`no TPM manufacturer CA directory at ${dir}: every EK certificate is untrusted`);
      return [];
    }
    const certificates: X509Certificate[] = [];
    for (const f of files) certificates.push(...(await readCaFile(join(dir, f))));
    this.logger.log(
      { dir, files: files.length, certificates: certificates.length },
      'TPM manufacturer CAs loaded',
    );
    return certificates;
  }
}

async function readCaFile(path: string): Promise<X509Certificate[]> {
  const text = await readFile(path, 'utf8');
  if (text.length > MAX_CA_FILE_BYTES) throw new Error(`${path} is larger than ${MAX_CA_FILE_BYTES} bytes`);
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) throw new Error(`${path} holds no PEM certificate`);
  return blocks.map((pem, i) => {
    try {
      const certificate = new X509Certificate(pem);
      void [certificate.subject, certificate.publicKey, certificate.notAfter];
      return certificate;
    } catch (e) {
      throw new Error(`certificate ${i + 1} of ${path} does not parse: ${(e as Error).message}`, {
        cause: e,
      });
    }
  });
}
