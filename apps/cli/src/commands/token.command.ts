import { Option, type Command } from 'commander';
import { ROLES, type Role } from '#otter/contracts';
import { apiClient, processCliContext, writeJson, type CliContext } from '../cli-context.js';
import { formatTimestamp, renderTable } from '../output.js';

export interface CreateTokenOptions {
  name: string;
  role: Role;
}

export function registerTokenCommands(program: Command, ctx: CliContext = processCliContext()): void {
  const token = program.command('token').description('manage API tokens (admin)');

  token
    .command('create')
    .description('create an API token; prints it as JSON, with the secret shown this once')
    .requiredOption('--name <name>', 'what the token is for, e.g. "ci-pipeline"')
    .addOption(new Option('--role <role>', 'what the token may do').choices(ROLES).makeOptionMandatory())
    .action((opts: CreateTokenOptions) => createToken(ctx, opts));

  token
    .command('list')
    .description('list API tokens (never their secrets)')
    .option('--json', 'print the token list as JSON')
    .action((opts: { json?: boolean }) => listTokens(ctx, opts));

  token
    .command('revoke')
    .description('revoke an API token; it stops working at once')
    .argument('<id>', 'token id, from `otter token list`')
    .action((id: string) => revokeToken(ctx, id));
}

export async function createToken(ctx: CliContext, opts: CreateTokenOptions): Promise<void> {
  const created = await apiClient(ctx).createToken({ name: opts.name, role: opts.role });
  writeJson(ctx, created);
  ctx.stderr.write('store the token now: it cannot be shown again\n');
}

export async function listTokens(ctx: CliContext, opts: { json?: boolean }): Promise<void> {
  const tokens = await apiClient(ctx).listTokens();
  if (opts.json) {
    writeJson(ctx, { tokens });
    return;
  }
  if (tokens.length === 0) {
    ctx.stderr.write('no tokens\n');
    return;
  }
  ctx.stdout.write(
    renderTable(
      ['ID', 'NAME', 'ROLE', 'CREATED', 'REVOKED'],
      tokens.map((t) => [
        t.id,
        t.name,
        t.role,
        formatTimestamp(t.createdAt),
        t.revokedAt ? formatTimestamp(t.revokedAt) : '-',
      ]),
    ),
  );
}

export async function revokeToken(ctx: CliContext, id: string): Promise<void> {
  await apiClient(ctx).revokeToken(id);
  ctx.stdout.write(`revoked token ${id}\n`);
}
