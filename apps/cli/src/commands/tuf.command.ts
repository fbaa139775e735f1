import { Argument, Option, type Command } from 'commander';
import { TUF_REPOSITORIES, type TufRepositoryName } from '#otter/api-client';
import { ONLINE_ROLES, type OnlineRole } from '#otter/tuf-signing';
import { processCliContext, type CliContext } from '../cli-context.js';
import {
  invalidateDirectorMetadata,
  keygen,
  listOnlineKeys,
  rotateOnlineKey,
  type KeygenOptions,
  type OnlineKeysOptions,
} from './tuf-keys.command.js';
import {
  createRoot,
  getRoot,
  publishRoot,
  signRootFile,
  verifyRoot,
  type CreateRootOptions,
  type GetRootOptions,
  type SignRootOptions,
  type VerifyRootOptions,
} from './tuf-root.command.js';

/** Every command that talks to the server takes one; a root is made for one repository and only fits it. */
function repositoryOption(): Option {
  return new Option(
    '--repository <name>',
    'the TUF repository: image (which images exist) or director (which image each node runs)',
  )
    .choices(TUF_REPOSITORIES)
    .default('image' satisfies TufRepositoryName);
}

export function registerTufCommands(program: Command, ctx: CliContext = processCliContext()): void {
  const tuf = program
    .command('tuf')
    .description(
      'TUF key ceremony, for the image or the director repository: offline root keys, online key rotation, root rotation',
    );

  tuf
    .command('keygen')
    .description('generate an ed25519 root key offline; prints its key id (no server needed)')
    .requiredOption(
      '--out <file>',
      'private key file to create (PKCS#8 PEM, mode 0600); FILE.pub.json gets the public key',
    )
    .option(
      '--passphrase-env <var>',
      'encrypt the private key with the passphrase in this environment variable',
    )
    .action((opts: KeygenOptions) => keygen(ctx, opts));

  tuf
    .command('online-keys')
    .description("list the server's online signing keys (targets, snapshot, timestamp) (admin)")
    .addOption(repositoryOption())
    .option('--json', 'print the keys as JSON (usable as `root create --online-keys FILE`)')
    .action((opts: OnlineKeysOptions) => listOnlineKeys(ctx, opts));

  tuf
    .command('rotate-online-key')
    .description('generate a new online key for a role; it signs once a new root lists it (admin)')
    .addArgument(new Argument('<role>', 'online role').choices(ONLINE_ROLES))
    .addOption(repositoryOption())
    .option('--json', 'print the new key as JSON')
    .action((role: OnlineRole, opts: OnlineKeysOptions) => rotateOnlineKey(ctx, role, opts));

  tuf
    .command('director-invalidate')
    .description(
      "after restoring a database backup: the director re-signs every node's metadata, newer, on its next poll (admin)",
    )
    .option('--json', 'print the answer as JSON')
    .action((opts: { json?: boolean }) => invalidateDirectorMetadata(ctx, opts));

  const root = tuf
    .command('root')
    .description('the root ceremony: create, sign (offline), verify and publish a root; get the current one');

  root
    .command('get')
    .description(
      "the repository's current root: what an agent is provisioned with (otter-agent --root, or --director-root) (admin)",
    )
    .addOption(repositoryOption())
    .option('--out <file>', 'write it to this file instead of stdout')
    .action((opts: GetRootOptions) => getRoot(ctx, opts));

  root
    .command('create')
    .description('build an unsigned root (the next version, or version 1 with --first)')
    .requiredOption('--root-key <pub.json>', "a root key holder's public key (repeat for each)", collect)
    .requiredOption('--threshold <k>', 'root signatures the new root needs')
    .option('--expires <when>', 'expiry: days (365d), hours (12h) or an ISO date', '365d')
    .option('--previous <file>', "the root this one replaces (offline); default: the server's current root")
    .option('--first', 'version 1, for a repository that has no root yet (production bootstrap)')
    .option(
      '--online-keys <file>',
      "saved `otter tuf online-keys --json` output; default: from the server, or the previous root's with --previous",
    )
    .requiredOption('--out <file>', 'the draft file to create')
    .addOption(repositoryOption())
    .action((opts: CreateRootOptions) => createRoot(ctx, opts));

  root
    .command('sign')
    .description('add your signature to a root file, in place (offline)')
    .argument('<root-file>', 'the root to sign')
    .requiredOption('--key <file>', 'your private root key (from `otter tuf keygen`)')
    .option('--passphrase-env <var>', 'environment variable holding the key passphrase')
    .option('--previous <file>', 'the root this one replaces, to count its signatures too')
    .action((file: string, opts: SignRootOptions) => signRootFile(ctx, file, opts));

  root
    .command('verify')
    .description('check a root the way the server and clients will; exit 1 listing the problems')
    .argument('<root-file>', 'the root to check')
    .option(
      '--previous <file>',
      "the root it replaces; default: none for version 1, else the server's current root (then the server's " +
        'online keys are checked too)',
    )
    .addOption(repositoryOption())
    .action((file: string, opts: VerifyRootOptions) => verifyRoot(ctx, file, opts));

  root
    .command('publish')
    .description(
      'submit a signed root; the server signs with the online keys it lists (the director: each node on its next poll) (admin)',
    )
    .argument('<root-file>', 'the signed root')
    .addOption(repositoryOption())
    .action((file: string, opts: { repository: TufRepositoryName }) => publishRoot(ctx, file, opts));
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
