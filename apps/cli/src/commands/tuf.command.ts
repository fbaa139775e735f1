import { Argument, Option, type Command } from 'commander';
import { TUF_REPOSITORIES, type TufRepositoryName } from '#otter/api-client';
import type { OnlineRole } from '#otter/tuf';
import { processCliContext, type CliContext } from '../cli-context.js';
import type { KeygenOptions, OnlineKeysOptions } from './tuf-keys.command.js';
import type {
  CreateRootOptions,
  GetRootOptions,
  SignRootOptions,
  VerifyRootOptions,
} from './tuf-root.command.js';

// #otter/tuf brings NestJS and the database drivers with it (~0.4 s to load): the commands load it only when
// a `tuf` command runs, so `otter release push` and the rest start as fast as before.
const keys = () => import('./tuf-keys.command.js');
const roots = () => import('./tuf-root.command.js');

/** ONLINE_ROLES of #otter/tuf without loading it; `satisfies` makes the compiler keep the two lists equal. */
const ONLINE_ROLE_CHOICES = Object.keys({ targets: 0, snapshot: 0, timestamp: 0 } satisfies Record<
  OnlineRole,
  0
>);

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
    .action(async (opts: KeygenOptions) => (await keys()).keygen(ctx, opts));

  tuf
    .command('online-keys')
    .description("list the server's online signing keys (targets, snapshot, timestamp) (admin)")
    .addOption(repositoryOption())
    .option('--json', 'print the keys as JSON (usable as `root create --online-keys FILE`)')
    .action(async (opts: OnlineKeysOptions) => (await keys()).listOnlineKeys(ctx, opts));

  tuf
    .command('rotate-online-key')
    .description('generate a new online key for a role; it signs once a new root lists it (admin)')
    .addArgument(new Argument('<role>', 'online role').choices(ONLINE_ROLE_CHOICES))
    .addOption(repositoryOption())
    .option('--json', 'print the new key as JSON')
    .action(async (role: OnlineRole, opts: OnlineKeysOptions) =>
      (await keys()).rotateOnlineKey(ctx, role, opts),
    );

  tuf
    .command('director-invalidate')
    .description(
      "after restoring a database backup: the director re-signs every node's metadata, newer, on its next poll (admin)",
    )
    .option('--json', 'print the answer as JSON')
    .action(async (opts: { json?: boolean }) => (await keys()).invalidateDirectorMetadata(ctx, opts));

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
    .action(async (opts: GetRootOptions) => (await roots()).getRoot(ctx, opts));

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
    .action(async (opts: CreateRootOptions) => (await roots()).createRoot(ctx, opts));

  root
    .command('sign')
    .description('add your signature to a root file, in place (offline)')
    .argument('<root-file>', 'the root to sign')
    .requiredOption('--key <file>', 'your private root key (from `otter tuf keygen`)')
    .option('--passphrase-env <var>', 'environment variable holding the key passphrase')
    .option('--previous <file>', 'the root this one replaces, to count its signatures too')
    .action(async (file: string, opts: SignRootOptions) => (await roots()).signRootFile(ctx, file, opts));

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
    .action(async (file: string, opts: VerifyRootOptions) => (await roots()).verifyRoot(ctx, file, opts));

  root
    .command('publish')
    .description(
      'submit a signed root; the server signs with the online keys it lists (the director: each node on its next poll) (admin)',
    )
    .argument('<root-file>', 'the signed root')
    .addOption(repositoryOption())
    .action(async (file: string, opts: { repository: TufRepositoryName }) =>
      (await roots()).publishRoot(ctx, file, opts),
    );
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
