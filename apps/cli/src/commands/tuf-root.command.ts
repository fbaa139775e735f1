import { ApiError, type TufRepositoryName } from '#otter/api-client';
import {
  checkRootTransition,
  createRootDraft,
  keyIdOf,
  ONLINE_ROLES,
  onlineRootProblems,
  roleSignatureStatus,
  signRoot,
  type OnlineRole,
  type RootSigned,
  type SignedEnvelope,
  type TufKey,
} from '#otter/tuf-signing';
import { CliError, type CliContext } from '../cli-context.js';
import {
  loadSigner,
  parseExpires,
  parseTufKey,
  readRootFile,
  readText,
  readTufKey,
  replaceFile,
  repositoryFlag,
  rootJson,
  shortId,
  tufAdminClient,
  writeNewFile,
} from './tuf-files.js';

export interface CreateRootOptions {
  rootKey: string[];
  threshold: string;
  expires: string;
  previous?: string;
  first?: boolean;
  onlineKeys?: string;
  out: string;
  repository: TufRepositoryName;
}

export interface GetRootOptions {
  out?: string;
  repository: TufRepositoryName;
}

export interface VerifyRootOptions {
  previous?: string;
  repository: TufRepositoryName;
}

export interface SignRootOptions {
  key: string;
  passphraseEnv?: string;
  previous?: string;
}

type Root = SignedEnvelope<RootSigned>;

/** The server answers a root it refuses with 422 and `details.problems`, under its repository's code. */
const ROOT_REJECTED: Record<TufRepositoryName, string> = {
  image: 'TUF_ROOT_REJECTED',
  director: 'DIRECTOR_ROOT_REJECTED',
};

export async function getRoot(ctx: CliContext, opts: GetRootOptions): Promise<void> {
  const root = await tufAdminClient(ctx, opts.repository).currentRoot();
  if (opts.out === undefined) {
    ctx.stdout.write(rootJson(root));
    return;
  }
  replaceFile(ctx, opts.out, rootJson(root));
  ctx.stderr.write(
    `wrote ${opts.repository} root version ${root.signed.version} (${describeRoot(root.signed)}) to ${opts.out}\n`,
  );
}

export async function createRoot(ctx: CliContext, opts: CreateRootOptions): Promise<void> {
  // Everything checkable offline is checked before the server is asked for anything.
  if (opts.first && opts.previous !== undefined)
    throw new CliError('give --previous FILE or --first, not both');
  if (!/^[1-9]\d*$/.test(opts.threshold)) throw new CliError('--threshold must be a positive integer');
  const threshold = Number(opts.threshold);
  const rootKeys = opts.rootKey.map((file) => readTufKey(ctx, file));
  const rootIds = rootKeys.map((k) => keyIdOf(k));
  const duplicate = rootIds.find((id, i) => rootIds.indexOf(id) !== i);
  if (duplicate) throw new CliError(`root key ${shortId(duplicate)} is given twice`);
  if (threshold > rootKeys.length) {
    throw new CliError(`--threshold ${threshold} exceeds the ${rootKeys.length} root key(s) given`);
  }
  const expires = parseExpires(opts.expires);
  const savedOnlineKeys =
    opts.onlineKeys === undefined ? undefined : readOnlineKeysFile(ctx, opts.onlineKeys);

  const client = tufAdminClient(ctx, opts.repository);
  let previous: RootSigned | undefined;
  if (opts.previous !== undefined) previous = readRootFile(ctx, opts.previous).signed;
  else if (!opts.first) previous = (await client.currentRoot()).signed;

  let onlineKeys: Record<OnlineRole, TufKey[]>;
  if (savedOnlineKeys) {
    onlineKeys = savedOnlineKeys;
  } else if (opts.previous !== undefined && previous) {
    onlineKeys = onlineKeysOf(previous);
    ctx.stderr.write(
      `online keys: kept those of root version ${previous.version} (offline); a key rotated since is not listed ` +
        '(use --online-keys FILE from `otter tuf online-keys --json` to list it)\n',
    );
  } else {
    onlineKeys = (await client.onlineKeys()).next;
  }
  for (const role of ONLINE_ROLES) {
    const online = onlineKeys[role].map((k) => keyIdOf(k)).find((id) => rootIds.includes(id));
    if (online)
      throw new CliError(`key ${shortId(online)} is a ${role} key: an online key must never be a root key`);
  }

  const draft = createRootDraft({ previous, rootKeys, rootThreshold: threshold, onlineKeys, expires });
  writeNewFile(ctx, opts.out, rootJson(draft), 0o644);
  const s = draft.signed;
  const flag = repositoryFlag(opts.repository);
  const lines = [
    `${opts.repository} root version ${s.version} written to ${opts.out} (unsigned)`,
    `  expires     ${s.expires}`,
    `  root        ${s.roles.root.threshold} of ${rootIds.map(shortId).join(', ')}`,
    ...ONLINE_ROLES.map((role) => `  ${role.padEnd(10)}  ${s.roles[role].keyids.map(shortId).join(', ')}`),
    `it needs signatures from ${s.roles.root.threshold} of its root keys` +
      (previous
        ? ` and ${previous.roles.root.threshold} of version ${previous.version}'s (${previous.roles.root.keyids.map(shortId).join(', ')})`
        : ''),
    `next: each holder runs \`otter tuf root sign --key KEY.pem ${opts.out}\`, then \`otter tuf root publish${flag} ${opts.out}\``,
  ];
  ctx.stdout.write(`${lines.join('\n')}\n`);
}

export function signRootFile(ctx: CliContext, file: string, opts: SignRootOptions): void {
  const root = readRootFile(ctx, file);
  const previous = opts.previous === undefined ? undefined : readRootFile(ctx, opts.previous).signed;
  const signer = loadSigner(ctx, opts.key, opts.passphraseEnv);
  const ownKey = root.signed.roles.root.keyids.includes(signer.keyId);
  const previousKey = !!previous?.roles.root.keyids.includes(signer.keyId);
  if (previous && !ownKey && !previousKey) {
    throw new CliError(
      `key ${shortId(signer.keyId)} is a root key of neither version ${root.signed.version} nor version ${previous.version}: not signing`,
    );
  }
  if (!previous && !ownKey) {
    ctx.stderr.write(
      `note: key ${shortId(signer.keyId)} is not one of this root's root keys; its signature counts only if the ` +
        'previous root lists it (give --previous FILE to check)\n',
    );
  }
  const signed = signRoot(root, signer);
  replaceFile(ctx, file, rootJson(signed));
  ctx.stdout.write(
    `signed root version ${root.signed.version} in ${file} with key ${shortId(signer.keyId)}\n` +
      signatureReport(signed, previous).join('\n') +
      '\n',
  );
}

export async function verifyRoot(ctx: CliContext, file: string, opts: VerifyRootOptions): Promise<void> {
  const root = readRootFile(ctx, file);
  const client = tufAdminClient(ctx, opts.repository);
  let previous: RootSigned | undefined;
  let fromServer = false;
  if (opts.previous !== undefined) {
    previous = readRootFile(ctx, opts.previous).signed;
  } else if (root.signed.version !== 1) {
    try {
      previous = (await client.currentRoot()).signed;
      fromServer = true;
    } catch (e) {
      throw new CliError(
        `root version ${root.signed.version} must be checked against the root it replaces: give --previous FILE ` +
          `(fetching the server's current root failed: ${e instanceof Error ? e.message : String(e)})`,
      );
    }
  }
  const problems = checkRootTransition(previous, root);
  const online = new Set(ONLINE_ROLES.flatMap((role) => root.signed.roles[role].keyids));
  for (const id of root.signed.roles.root.keyids) {
    if (online.has(id)) problems.push(`key ${shortId(id)} is both a root key and an online key`);
  }
  if (fromServer) {
    // Online anyway: the server's own check that it holds the online keys the root names, which also tells
    // a root made for the other repository (the two never share an online key).
    const held = new Set((await client.onlineKeys()).keys.map((k) => k.keyId));
    const keyProblems = onlineRootProblems(root.signed, held);
    problems.push(...keyProblems.map((p) => `${opts.repository} repository: ${p}`));
    if (keyProblems.length > 0) {
      const hint = await otherRepositoryHint(ctx, root, opts.repository);
      if (hint) problems.push(hint);
    }
  }
  ctx.stdout.write(
    `root version ${root.signed.version} (${describeRoot(root.signed)})` +
      (previous ? `, replacing version ${previous.version}` : '') +
      '\n' +
      signatureReport(root, previous).join('\n') +
      '\n',
  );
  if (problems.length > 0) {
    ctx.stdout.write(`problems:\n${problems.map((p) => `  - ${p}`).join('\n')}\n`);
    throw new CliError(
      `root version ${root.signed.version} is not acceptable (${problems.length} problem(s))`,
    );
  }
  ctx.stdout.write('ok: acceptable to the server and to clients\n');
}

export async function publishRoot(
  ctx: CliContext,
  file: string,
  opts: { repository: TufRepositoryName },
): Promise<void> {
  const root = readRootFile(ctx, file);
  let published;
  try {
    published = await tufAdminClient(ctx, opts.repository).publishRoot(root);
  } catch (e) {
    if (e instanceof ApiError && e.code === ROOT_REJECTED[opts.repository]) {
      const problems = Array.isArray(e.details?.problems)
        ? (e.details.problems as unknown[]).map(String)
        : [];
      const hint = await otherRepositoryHint(ctx, root, opts.repository);
      if (hint) problems.push(hint);
      throw new CliError(
        `the server refused root version ${root.signed.version} (${e.status} ${e.code})` +
          (problems.length > 0 ? `:\n${problems.map((p) => `  - ${p}`).join('\n')}` : `: ${e.message}`),
      );
    }
    throw e;
  }
  ctx.stdout.write(
    `published ${opts.repository} root version ${published.version} (expires ${published.expires})\n`,
  );
  ctx.stderr.write(
    opts.repository === 'image'
      ? 'agents that trust an older root follow the chain on their next poll; provision new agents with ' +
          '`otter tuf root get --out root.json` (otter-agent --root)\n'
      : 'nodes that trust an older director root follow the chain on their next poll (each is re-signed with ' +
          'the new keys then); provision new agents with ' +
          '`otter tuf root get --repository director --out director-root.json` (otter-agent --director-root)\n',
  );
}

/**
 * Why a root the repository refuses may be another's: it names the other repository's online keys for every
 * online role. Only a hint, so a failure to ask is no error.
 */
async function otherRepositoryHint(
  ctx: CliContext,
  root: Root,
  repository: TufRepositoryName,
): Promise<string | undefined> {
  const other: TufRepositoryName = repository === 'image' ? 'director' : 'image';
  let held: Set<string>;
  try {
    held = new Set((await tufAdminClient(ctx, other).onlineKeys()).keys.map((k) => k.keyId));
  } catch {
    return undefined;
  }
  const listsOther = ONLINE_ROLES.every((role) => root.signed.roles[role].keyids.some((id) => held.has(id)));
  return listsOther
    ? `it names the ${other} repository's online keys: it was made for \`--repository ${other}\``
    : undefined;
}

function describeRoot(root: RootSigned): string {
  return `expires ${root.expires}, root keys: ${root.roles.root.threshold} of ${root.roles.root.keyids.length}`;
}

/** One line per root-key set whose threshold the root must meet: who signed, who has not. */
function signatureReport(root: Root, previous: RootSigned | undefined): string[] {
  const line = (label: string, trusted: RootSigned): string => {
    const s = roleSignatureStatus(trusted, 'root', root);
    const enough = s.signedBy.length >= s.threshold;
    return (
      `  ${label}: ${s.signedBy.length} valid of ${s.threshold} needed${enough ? ' (threshold met)' : ''}` +
      (s.signedBy.length > 0 ? `; signed: ${s.signedBy.map(shortId).join(', ')}` : '') +
      (s.missing.length > 0 ? `; not signed: ${s.missing.map(shortId).join(', ')}` : '')
    );
  };
  const lines = [line(`root keys of version ${root.signed.version}`, root.signed)];
  if (previous) lines.push(line(`root keys of version ${previous.version} (previous)`, previous));
  return lines;
}

function onlineKeysOf(root: RootSigned): Record<OnlineRole, TufKey[]> {
  const keys = (role: OnlineRole): TufKey[] =>
    root.roles[role].keyids.map((id) => {
      const key = root.keys[id];
      if (!key)
        throw new CliError(`the previous root names ${role} key ${shortId(id)} without listing it in keys`);
      return key;
    });
  return { targets: keys('targets'), snapshot: keys('snapshot'), timestamp: keys('timestamp') };
}

function readOnlineKeysFile(ctx: CliContext, file: string): Record<OnlineRole, TufKey[]> {
  let value: unknown;
  try {
    value = JSON.parse(readText(ctx, file, 'online keys file'));
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError(`online keys file ${file} is not valid JSON (${(e as Error).message})`);
  }
  const next = (value as { next?: Partial<Record<OnlineRole, unknown>> } | null)?.next;
  const keys = (role: OnlineRole): TufKey[] => {
    const list = next?.[role];
    if (!Array.isArray(list) || list.length === 0) {
      throw new CliError(
        `online keys file ${file} has no "next.${role}" keys (save \`otter tuf online-keys --json\`)`,
      );
    }
    return list.map((k, i) => parseTufKey(k, `online keys file ${file}: next.${role}[${i}]`));
  };
  return { targets: keys('targets'), snapshot: keys('snapshot'), timestamp: keys('timestamp') };
}
