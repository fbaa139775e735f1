import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Metadata, MetadataKind, type Targets } from '@tufjs/models';
import { Updater } from 'tuf-js';
import { ResumableFetcher, type ResumableFetcherOptions } from './resumable-fetcher.js';
import { describeError, TufClientError } from './tuf-client-error.js';
import { refreshFailed, seedTrustedRoot } from './tuf-session.js';

export interface DirectorSessionOptions {
  /** Otter server base URL (already validated). */
  serverUrl: string;
  nodeId: string;
  /**
   * The device's credentials for one GET of `url`: its access token and a DPoP proof for that URL. The
   * director serves a node its own metadata only.
   */
  authorize: (url: string) => Promise<Record<string, string>>;
  /** The director root this device was provisioned with; rotated in the state dir by TUF. */
  trustedRootPath: string;
  stateDir: string;
  fetcher?: ResumableFetcherOptions;
}

/** One target as the director's verified targets role lists it. */
export interface DirectorListedTarget {
  path: string;
  length: number;
  hashes: Record<string, string>;
  custom: Record<string, unknown>;
}

/**
 * One verified view of this node's director metadata: a fresh tuf-js Updater (single use) that refreshed
 * root, timestamp, snapshot and targets from `/tuf/director/{nodeId}/metadata` with the device's token.
 */
export class DirectorSession {
  private constructor(
    private readonly updater: Updater,
    private readonly metadataDir: string,
    private readonly metadataBaseUrl: string,
  ) {}

  static async open(options: DirectorSessionOptions): Promise<DirectorSession> {
    const metadataDir = join(resolve(options.stateDir), 'director', 'metadata');
    await seedTrustedRoot(options.trustedRootPath, metadataDir);
    const metadataBaseUrl = `${options.serverUrl}/tuf/director/${encodeURIComponent(options.nodeId)}/metadata`;
    const fetcher = new ResumableFetcher({ ...options.fetcher, requestHeaders: options.authorize });
    let updater: Updater;
    try {
      updater = new Updater({ metadataDir, metadataBaseUrl, fetcher });
    } catch (error) {
      throw new TufClientError(
        'TRUSTED_ROOT_INVALID',
        `cannot load ${join(metadataDir, 'root.json')}: ${describeError(error)}`,
        { cause: error },
      );
    }
    try {
      await updater.refresh();
    } catch (error) {
      throw refreshFailed(metadataBaseUrl, error);
    }
    return new DirectorSession(updater, metadataDir, metadataBaseUrl);
  }

  /**
   * Every target the verified targets role lists. tuf-js has no listing: the paths come from the
   * `targets.json` it verified and persisted in this refresh, and each is confirmed through tuf-js's own
   * lookup, which answers from the verified metadata in memory.
   */
  async targets(): Promise<DirectorListedTarget[]> {
    let persisted: Metadata<Targets>;
    try {
      const text = await readFile(join(this.metadataDir, 'targets.json'), 'utf8');
      persisted = Metadata.fromJSON(
        MetadataKind.Targets,
        JSON.parse(text) as Parameters<typeof Metadata.fromJSON>[1],
      );
    } catch (error) {
      throw refreshFailed(this.metadataBaseUrl, error);
    }
    const listed: DirectorListedTarget[] = [];
    for (const [path, fromFile] of Object.entries(persisted.signed.targets)) {
      const verified = await this.updater.getTargetInfo(path);
      if (!verified?.equals(fromFile)) {
        throw new TufClientError(
          'METADATA_REFRESH_FAILED',
          `the persisted director targets.json does not match the verified one (${path})`,
        );
      }
      listed.push({ path, length: verified.length, hashes: { ...verified.hashes }, custom: verified.custom });
    }
    return listed;
  }
}
