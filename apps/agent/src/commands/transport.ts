import type { Command } from 'commander';
import {
  CA_FILE_ENV,
  checkServerTransport,
  INSECURE_HTTP_ENV,
  transportSettings,
  trustCaFile,
} from '#otter/api-client';
import { AgentError } from '../device/agent-error.js';
import { loadDeviceState } from '../device/device-state.js';

/** `--insecure-http` and `--ca-file`, on the program: they hold for every command. */
export function addTransportOptions(program: Command): Command {
  return program
    .option(
      '--insecure-http',
      `allow an http:// server that is not loopback (labs only: warns on every run; or ${INSECURE_HTTP_ENV}=1)`,
    )
    .option('--ca-file <file>', `PEM bundle of CAs to trust for an https:// server (or ${CA_FILE_ENV})`)
    .hook('preAction', (root, command) => checkTransport(root, command));
}

/**
 * Before a command talks to the server: trust the CA bundle, and refuse a server that would see the node's
 * tokens in clear (`http://` to anything but loopback) unless --insecure-http, which then warns on every run.
 * The server is the command's `--server`, else the one the node enrolled with (`--state-dir`).
 */
async function checkTransport(root: Command, command: Command): Promise<void> {
  const transport = transportSettings(root.opts<{ insecureHttp?: boolean; caFile?: string }>());
  if (transport.caFile) trustCaFile(transport.caFile);
  const flags = command.opts<{ server?: string; stateDir?: string }>();
  const server =
    flags.server ?? (flags.stateDir ? (await loadDeviceState(flags.stateDir))?.server : undefined);
  if (server === undefined) {
    if (transport.insecureHttp)
      process.stderr.write('otter-agent: WARNING: --insecure-http is set (labs only)\n');
    return;
  }
  let warning: string | undefined;
  try {
    ({ warning } = checkServerTransport(server, transport, `server ${server}`));
  } catch (e) {
    throw new AgentError('INSECURE_SERVER', (e as Error).message);
  }
  if (warning) process.stderr.write(`otter-agent: ${warning}\n`);
  else if (transport.insecureHttp) {
    process.stderr.write(
      `otter-agent: WARNING: --insecure-http is set (labs only); ${server} needs no exception\n`,
    );
  }
}
