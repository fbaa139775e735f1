import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectorAssignmentRepository, type DirectorAssignment } from '#otter/director';
import type { Ed25519Signer, SignedEnvelope } from '#otter/tuf-signing';
import type { ApiHarness } from '../../testing/api-harness.js';
import { deviceCredentialsFor, type SoftwareDeviceKey } from '../../testing/software-device-key.js';
import { stolenOnlineKeys } from '../../testing/tuf-attacker.js';
import { seedNodeRow } from '#otter/db';

export interface TestNode {
  id: string;
  hardwareId: string;
  /** A device access token, bound to `key`. */
  token: string;
  key: SoftwareDeviceKey;
  /** The node's headers for one request: its token and a fresh DPoP proof for `method` and `url`. */
  headers(method: string, url: string): Promise<Record<string, string>>;
}

/** Nodes, tokens, assignments and provisioned roots for director tests, straight against the api's state. */
export class DirectorFixtures {
  constructor(private readonly api: ApiHarness) {}

  /**
   * An active node with a software device key and a fresh access token bound to it (no TPM: the token service
   * issues it directly).
   */
  async node(hardwareId = 'rpi4'): Promise<TestNode> {
    const id = await seedNodeRow(this.api.db, { hardwareId });
    const credentials = await deviceCredentialsFor(this.api.app, id);
    return { id, hardwareId, ...credentials };
  }

  /** What the rollout scheduler does: the image the node should run, as the image repository signs it. */
  assign(
    node: TestNode,
    version: string,
    image: { sha256: string; length: number },
    rolloutId: string | null = 'rollout-1',
  ): Promise<DirectorAssignment> {
    return this.api.app.get(DirectorAssignmentRepository).assign({
      nodeId: node.id,
      hardwareId: node.hardwareId,
      releaseId: `release-${version}`,
      targetPath: `images/${node.hardwareId}/${version}`,
      version,
      sha256: image.sha256,
      length: image.length,
      rolloutId,
    });
  }

  /** A fresh agent state dir and the two roots a device is provisioned with. */
  async provision(node: TestNode): Promise<{ stateDir: string; imageRoot: string; directorRoot: string }> {
    const dir = mkdtempSync(join(tmpdir(), 'otter-agent-'));
    const imageRoot = join(dir, 'image-root.json');
    const directorRoot = join(dir, 'director-root.json');
    writeFileSync(imageRoot, await this.text('/tuf/image/metadata/1.root.json'));
    writeFileSync(directorRoot, await this.text(`/tuf/director/${node.id}/metadata/1.root.json`, node));
    return { stateDir: join(dir, 'state'), imageRoot, directorRoot };
  }

  /** The server's own online key of a repository, as an attacker who stole it would hold it. */
  async stolenKey(repository: 'image' | 'director', role: 'timestamp' | 'targets'): Promise<Ed25519Signer> {
    const keys = await stolenOnlineKeys(this.api.config.dataDir, repository).keys();
    const key = keys.find((k) => k.info.role === role);
    if (!key) throw new Error(`no ${repository} ${role} key`);
    return key.signer;
  }

  /** GET `path`, as `node` when given (its token and a DPoP proof). */
  async text(path: string, node?: TestNode): Promise<string> {
    const url = `${this.api.url}${path}`;
    const res = await fetch(url, { headers: node ? await node.headers('GET', url) : {} });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return res.text();
  }

  async json<T extends SignedEnvelope>(path: string, node?: TestNode): Promise<T> {
    return JSON.parse(await this.text(path, node)) as T;
  }
}
