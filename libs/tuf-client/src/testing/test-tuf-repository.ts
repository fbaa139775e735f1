import { createHash, generateKeyPairSync, sign } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { canonicalize } from '@tufjs/canonical-json';
import {
  Key,
  Metadata,
  MetaFile,
  Root,
  Signature,
  Snapshot,
  TargetFile,
  Targets,
  Timestamp,
} from '@tufjs/models';
// Not exported from the package index (see the TUF notes): deep imports.
import { Delegations } from '@tufjs/models/dist/delegations.js';
import { DelegatedRole, SuccinctRoles } from '@tufjs/models/dist/role.js';
import type { JSONValue } from '@tufjs/models/dist/utils/types.js';

/** An ed25519 TUF key with its signer. */
export interface TestKey {
  key: Key;
  signer: (data: Buffer) => Signature;
}

export function generateTestKey(): TestKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  // keyval.public is the hex of the raw 32-byte key: the last 32 bytes of its SPKI DER.
  const keyVal = { public: publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex') };
  // TUF has no key-id helper: key id = sha256 of the canonical JSON of the public key.
  const keyID = sha256Hex(
    Buffer.from(canonicalize({ keytype: 'ed25519', scheme: 'ed25519', keyval: keyVal })),
  );
  return {
    key: new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal }),
    signer: (data) => new Signature({ keyID, sig: sign(null, data, privateKey).toString('hex') }),
  };
}

export type HashAlgorithm = 'sha256' | 'sha512';

interface TestTarget {
  content: Buffer;
  /** Hashes to sign instead of the real ones (to sign metadata that does not match what is served). */
  signedHashes?: Record<string, string>;
  signedLength?: number;
  /** The target's `custom` metadata. */
  custom?: Record<string, unknown>;
}

type DelegationSpec = { kind: 'paths'; roles: DelegatedRole[] } | { kind: 'bins'; bins: SuccinctRoles };

/**
 * A real TUF 1.0 repository on disk with Otter's layout, for tests: consistent snapshots,
 * `metadata/N.<role>.json` plus `metadata/timestamp.json`, and targets at `targets/<dir>/<sha256>.<name>`.
 * Each `publish()` writes a new version of every targets role, the snapshot and the timestamp. Delegated
 * roles (path delegations, succinct hash bins, nested) all share one key.
 */
export class TestTufRepository {
  readonly rootKey = generateTestKey();
  readonly targetsKey = generateTestKey();
  readonly snapshotKey = generateTestKey();
  readonly timestampKey = generateTestKey();
  readonly delegatedKey = generateTestKey();
  readonly metadataDir: string;
  readonly targetsDir: string;
  private readonly hashAlgorithms: readonly HashAlgorithm[];
  private readonly targets = new Map<string, TestTarget>();
  private readonly delegations = new Map<string, DelegationSpec>();
  private version = 0;

  constructor(
    readonly dir: string,
    options: { hashAlgorithms?: readonly HashAlgorithm[] } = {},
  ) {
    this.metadataDir = join(dir, 'metadata');
    this.targetsDir = join(dir, 'targets');
    this.hashAlgorithms = options.hashAlgorithms ?? ['sha256'];
  }

  /** The root a device is provisioned with (version 1). */
  get trustedRootPath(): string {
    return join(this.metadataDir, '1.root.json');
  }

  /** Version of the latest publish. */
  get currentVersion(): number {
    return this.version;
  }

  /** `delegator` delegates `paths` patterns to each named role. */
  delegatePaths(delegator: string, roles: ReadonlyArray<{ name: string; paths: string[] }>): this {
    this.delegations.set(delegator, {
      kind: 'paths',
      roles: roles.map(
        ({ name, paths }) =>
          new DelegatedRole({
            name,
            paths,
            terminating: true,
            keyIDs: [this.delegatedKey.key.keyID],
            threshold: 1,
          }),
      ),
    });
    return this;
  }

  /** `delegator` delegates everything to 2^bitLength succinct hash bins named `<namePrefix>-<hex>`. */
  delegateHashBins(delegator: string, namePrefix: string, bitLength: number): this {
    this.delegations.set(delegator, {
      kind: 'bins',
      bins: new SuccinctRoles({ namePrefix, bitLength, keyIDs: [this.delegatedKey.key.keyID], threshold: 1 }),
    });
    return this;
  }

  addTarget(
    path: string,
    content: Buffer,
    options: {
      signedHashes?: Record<string, string>;
      signedLength?: number;
      custom?: Record<string, unknown>;
    } = {},
  ): this {
    this.targets.set(path, { content, ...options });
    return this;
  }

  /** The role whose metadata lists `path`, following the delegations from top-level targets. */
  roleFor(path: string): string {
    let role = 'targets';
    for (;;) {
      const spec = this.delegations.get(role);
      if (!spec) return role;
      const next =
        spec.kind === 'bins'
          ? spec.bins.getRoleForTarget(path)
          : spec.roles.find((r) => r.isDelegatedPath(path))?.name;
      if (next === undefined) return role;
      role = next;
    }
  }

  /** Signed info of a target as the client will see it. */
  targetInfo(path: string): { length: number; hashes: Record<string, string> } {
    const target = this.targets.get(path);
    if (!target) throw new Error(`no test target ${path}`);
    return {
      length: target.signedLength ?? target.content.length,
      hashes: target.signedHashes ?? this.hashesOf(target.content),
    };
  }

  /** Where the test server finds the served bytes of a target. */
  targetFile(path: string): string {
    const target = this.targets.get(path);
    if (!target) throw new Error(`no test target ${path}`);
    return join(this.targetsDir, hashPrefixed(path, sha256Hex(target.content)));
  }

  /** URL path (below the repository prefix) a client requests for a target. */
  targetUrlPath(path: string): string {
    return `/targets/${hashPrefixed(path, this.targetInfo(path).hashes['sha256'] ?? '')}`;
  }

  metadataFile(name: string): string {
    return join(this.metadataDir, name);
  }

  async publish(): Promise<void> {
    this.version += 1;
    const version = this.version;
    const expires = inOneWeek();
    await mkdir(this.metadataDir, { recursive: true });
    if (version === 1) await this.writeRoot(expires);

    const roleNames = this.allTargetsRoles();
    const meta: Record<string, MetaFile> = {};
    for (const name of roleNames) {
      const signed = new Targets({
        version,
        specVersion: '1.0.31',
        expires,
        targets: this.targetFilesFor(name),
        delegations: this.delegationsOf(name),
      });
      const md = new Metadata(signed);
      md.sign((name === 'targets' ? this.targetsKey : this.delegatedKey).signer);
      await this.writeMetadata(`${version}.${name}.json`, md);
      // Version only, no hashes: a tampered targets file must then fail on its signature, not its hash.
      meta[`${name}.json`] = new MetaFile({ version });
    }

    const snapshot = new Metadata(new Snapshot({ version, specVersion: '1.0.31', expires, meta }));
    snapshot.sign(this.snapshotKey.signer);
    const snapshotBytes = await this.writeMetadata(`${version}.snapshot.json`, snapshot);

    const timestamp = new Metadata(
      new Timestamp({
        version,
        specVersion: '1.0.31',
        expires,
        // Hashes over the exact bytes served.
        snapshotMeta: new MetaFile({
          version,
          length: snapshotBytes.length,
          hashes: { sha256: sha256Hex(snapshotBytes) },
        }),
      }),
    );
    timestamp.sign(this.timestampKey.signer);
    await this.writeMetadata('timestamp.json', timestamp);

    for (const [path, target] of this.targets) {
      const file = join(this.targetsDir, hashPrefixed(path, sha256Hex(target.content)));
      await mkdir(dirname(file), { recursive: true });
      await writeFile(file, target.content);
    }
  }

  private async writeRoot(expires: string): Promise<void> {
    const root = new Root({ version: 1, specVersion: '1.0.31', expires, consistentSnapshot: true });
    root.addKey(this.rootKey.key, 'root');
    root.addKey(this.targetsKey.key, 'targets');
    root.addKey(this.snapshotKey.key, 'snapshot');
    root.addKey(this.timestampKey.key, 'timestamp');
    const md = new Metadata(root);
    md.sign(this.rootKey.signer);
    await this.writeMetadata('1.root.json', md);
  }

  private allTargetsRoles(): string[] {
    const names = ['targets'];
    for (let i = 0; i < names.length; i++) {
      const spec = this.delegations.get(names[i]!);
      if (spec?.kind === 'paths') names.push(...spec.roles.map((r) => r.name));
      if (spec?.kind === 'bins') names.push(...spec.bins.getRoles());
    }
    return names;
  }

  private targetFilesFor(role: string): Record<string, TargetFile> {
    const files: Record<string, TargetFile> = {};
    for (const path of this.targets.keys()) {
      if (this.roleFor(path) !== role) continue;
      const custom = this.targets.get(path)?.custom;
      files[path] = new TargetFile({
        path,
        ...this.targetInfo(path),
        ...(custom && { unrecognizedFields: { custom: custom as Record<string, JSONValue> } }),
      });
    }
    return files;
  }

  private delegationsOf(role: string): Delegations | undefined {
    const spec = this.delegations.get(role);
    if (!spec) return undefined;
    const keys = { [this.delegatedKey.key.keyID]: this.delegatedKey.key };
    return spec.kind === 'bins'
      ? new Delegations({ keys, succinctRoles: spec.bins })
      : new Delegations({ keys, roles: Object.fromEntries(spec.roles.map((r) => [r.name, r])) });
  }

  private hashesOf(content: Buffer): Record<string, string> {
    return Object.fromEntries(
      this.hashAlgorithms.map((algorithm) => [
        algorithm,
        createHash(algorithm).update(content).digest('hex'),
      ]),
    );
  }

  private async writeMetadata(
    name: string,
    md: Metadata<Root | Targets | Snapshot | Timestamp>,
  ): Promise<Buffer> {
    const bytes = Buffer.from(JSON.stringify(md.toJSON()));
    await writeFile(join(this.metadataDir, name), bytes);
    return bytes;
  }
}

/** `a/b/name` -> `a/b/<sha256>.name`. */
function hashPrefixed(path: string, sha256: string): string {
  const { dir, base } = posix.parse(path);
  return dir ? `${dir}/${sha256}.${base}` : `${sha256}.${base}`;
}

function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function inOneWeek(): string {
  return new Date(Date.now() + 7 * 24 * 3600 * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
