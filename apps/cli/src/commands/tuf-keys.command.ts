import type { TufRepositoryName } from '#otter/api-client';
import { ONLINE_ROLES, Ed25519Signer, keyIdOf, type OnlineRole } from '#otter/tuf-signing';
import { CliError, writeJson, type CliContext } from '../cli-context.js';
import { formatTimestamp, renderTable } from '../output.js';
import {
  MIN_PASSPHRASE_LENGTH,
  passphraseFrom,
  removeQuietly,
  repositoryFlag,
  shortId,
  tufAdminClient,
  writeNewFile,
} from './tuf-files.js';

export interface KeygenOptions {
  out: string;
  passphraseEnv?: string;
}

export interface OnlineKeysOptions {
  repository: TufRepositoryName;
  json?: boolean;
}

export function keygen(ctx: CliContext, opts: KeygenOptions): void {
  const passphrase = passphraseFrom(ctx, opts.passphraseEnv);
  if (passphrase !== undefined && passphrase.length < MIN_PASSPHRASE_LENGTH) {
    throw new CliError(
      `the passphrase in ${opts.passphraseEnv} must be at least ${MIN_PASSPHRASE_LENGTH} characters`,
    );
  }
  const signer = Ed25519Signer.generate();
  const keyPath = writeNewFile(ctx, opts.out, signer.toPem(passphrase), 0o600);
  const pubFile = `${opts.out}.pub.json`;
  try {
    writeNewFile(ctx, pubFile, `${JSON.stringify(signer.tufKey, null, 2)}\n`, 0o644);
  } catch (e) {
    // Never leave a private key whose public half nobody received.
    removeQuietly(keyPath);
    throw e;
  }
  ctx.stdout.write(`${signer.keyId}\n`);
  ctx.stderr.write(
    `wrote ${opts.out} (private, mode 0600, ${passphrase === undefined ? 'NOT encrypted: keep it on offline media' : `encrypted with the passphrase in ${opts.passphraseEnv}`})\n` +
      `wrote ${pubFile} (public): hand it to whoever runs \`otter tuf root create --root-key ${pubFile}\`\n`,
  );
}

export async function listOnlineKeys(ctx: CliContext, opts: OnlineKeysOptions): Promise<void> {
  const dto = await tufAdminClient(ctx, opts.repository).onlineKeys();
  if (opts.json) {
    writeJson(ctx, dto);
    return;
  }
  const next = new Set(Object.values(dto.next).flatMap((keys) => keys.map((k) => keyIdOf(k))));
  const order = (role: string): number => ONLINE_ROLES.indexOf(role as OnlineRole);
  const keys = [...dto.keys].sort(
    (a, b) => order(a.role) - order(b.role) || a.createdAt.localeCompare(b.createdAt),
  );
  // active: the current root lists it; pending: the next root should list it; superseded: neither (a newer
  // key of its role was generated since; the server destroys it once a root without it is published).
  const status = (k: (typeof keys)[number]): string =>
    k.active ? 'active' : next.has(k.keyId) ? 'pending' : 'superseded';
  ctx.stdout.write(
    renderTable(
      ['ROLE', 'KEY ID', 'CREATED', 'STATUS'],
      keys.map((k) => [k.role, shortId(k.keyId), formatTimestamp(k.createdAt), status(k)]),
    ),
  );
  if (keys.some((k) => status(k) === 'pending')) {
    ctx.stderr.write(
      `pending keys sign nothing until a root that lists them is published (\`otter tuf root create${repositoryFlag(opts.repository)}\`)\n`,
    );
  }
}

export async function rotateOnlineKey(
  ctx: CliContext,
  role: OnlineRole,
  opts: OnlineKeysOptions,
): Promise<void> {
  const key = await tufAdminClient(ctx, opts.repository).rotateOnlineKey(role);
  if (opts.json) {
    writeJson(ctx, key);
  } else {
    ctx.stdout.write(
      `new ${opts.repository} ${role} key ${key.keyId} (pending, created ${formatTimestamp(key.createdAt)})\n`,
    );
  }
  const flag = repositoryFlag(opts.repository);
  ctx.stderr.write(
    `The current ${role} key keeps signing until a root that lists the new one is published. Next:\n` +
      `  1. otter tuf root create${flag} --root-key HOLDER.pem.pub.json ... --threshold K --out root-next.json\n` +
      '     (lists the pending key: it takes the online keys from the server)\n' +
      '  2. each root key holder: otter tuf root sign --key HOLDER.pem root-next.json\n' +
      "     (a threshold of the current root's keys and of the new root's keys)\n" +
      `  3. otter tuf root verify${flag} root-next.json && otter tuf root publish${flag} root-next.json\n`,
  );
}

export async function invalidateDirectorMetadata(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  const result = await tufAdminClient(ctx, 'director').invalidateDirectorMetadata();
  if (opts.json) {
    writeJson(ctx, result);
    return;
  }
  ctx.stdout.write(`director metadata of ${result.nodes} node(s) marked stale\n`);
  ctx.stderr.write(
    'each node gets newly signed metadata, with a version above any it trusts, on its next poll\n',
  );
}
