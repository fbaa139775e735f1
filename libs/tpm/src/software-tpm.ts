import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** A manufacturer CA as swtpm's local CA creates it: root and intermediate certificate files. */
export interface SoftwareTpmCa {
  dir: string;
  /** PEM files a verifier should trust (root, then intermediate). */
  certificateFiles: string[];
}

export interface SoftwareTpm {
  /** TCTI string as tpm2-tools and the agent take it, e.g. `swtpm:host=127.0.0.1,port=2321`. */
  tcti: string;
  port: number;
  stateDir: string;
  ca: SoftwareTpmCa;
  /**
   * Power-cycles the TPM: with `clean`, a TPM2_Shutdown first (as an orderly reboot); without, a power loss.
   * `whileOff` runs while swtpm is stopped (tests copy or restore `stateDir` there).
   */
  restart(options?: { clean?: boolean; whileOff?: () => Promise<void> }): Promise<void>;
  /** Orderly shutdown and stop; the state directory is removed unless `keepState`. */
  stop(options?: { keepState?: boolean }): Promise<void>;
}

/**
 * A real TPM 2.0 for tests and the demo: swtpm, provisioned by swtpm_setup with RSA and ECC (P-384)
 * endorsement key certificates issued by a local manufacturer CA. TPMs started with the same `caDir` chain to
 * the same CA, like nodes from one manufacturer.
 */
export async function startSoftwareTpm(options: { caDir?: string } = {}): Promise<SoftwareTpm> {
  const base = await mkdtemp(join(tmpdir(), 'otter-swtpm-'));
  const stateDir = join(base, 'state');
  const caDir = options.caDir ?? join(base, 'ca');
  await mkdir(stateDir, { recursive: true });
  await mkdir(caDir, { recursive: true });
  await writeFile(
    join(base, 'localca.conf'),
    [
      `statedir = ${caDir}`,
      `signingkey = ${join(caDir, 'signkey.pem')}`,
      `issuercert = ${join(caDir, 'issuercert.pem')}`,
      `certserial = ${join(caDir, 'certserial')}`,
      '',
    ].join('\n'),
  );
  await writeFile(
    join(base, 'localca.options'),
    '--platform-manufacturer Otter\n--platform-version 2.1\n--platform-model SoftwareTPM\n',
  );
  await writeFile(
    join(base, 'setup.conf'),
    [
      'create_certs_tool = /usr/bin/swtpm_localca',
      `create_certs_tool_config = ${join(base, 'localca.conf')}`,
      `create_certs_tool_options = ${join(base, 'localca.options')}`,
      'active_pcr_banks = sha256',
      '',
    ].join('\n'),
  );
  await run('swtpm_setup', [
    '--tpm2',
    '--tpmstate',
    stateDir,
    '--create-ek-cert',
    '--create-platform-cert',
    '--pcr-banks',
    'sha256',
    '--config',
    join(base, 'setup.conf'),
    '--overwrite',
  ]);

  const port = await freePortPair();
  const pidFile = join(base, 'swtpm.pid');
  const tcti = `swtpm:host=127.0.0.1,port=${port}`;
  const start = async (): Promise<void> => {
    await run('swtpm', [
      'socket',
      '--tpm2',
      '--tpmstate',
      `dir=${stateDir}`,
      '--server',
      `type=tcp,port=${port},bindaddr=127.0.0.1`,
      '--ctrl',
      `type=tcp,port=${port + 1},bindaddr=127.0.0.1`,
      '--flags',
      'not-need-init,startup-clear',
      '--daemon',
      '--pid',
      `file=${pidFile}`,
    ]);
    await waitForPort(port);
    // One command round trip: swtpm's startup-clear (and the NV write of the TPM's reset counter) has then
    // happened. Without it a power loss right after start could lose that write, which a real TPM never does,
    // and a test would see a TPM that did not move forward.
    await run('tpm2_getcap', ['properties-variable'], { env: { ...process.env, TPM2TOOLS_TCTI: tcti } });
  };
  const kill = async (): Promise<void> => {
    const pid = Number((await readFile(pidFile, 'utf8').catch(() => '')).trim());
    if (!pid) return;
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    for (let i = 0; i < 100 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
  };
  const shutdown = async (): Promise<void> => {
    await run('tpm2_shutdown', ['-c'], { env: { ...process.env, TPM2TOOLS_TCTI: tcti } }).catch(
      () => undefined,
    );
  };

  await start();
  return {
    tcti,
    port,
    stateDir,
    ca: {
      dir: caDir,
      certificateFiles: [join(caDir, 'swtpm-localca-rootca-cert.pem'), join(caDir, 'issuercert.pem')],
    },
    async restart({ clean = true, whileOff }: { clean?: boolean; whileOff?: () => Promise<void> } = {}) {
      if (clean) await shutdown();
      await kill();
      // With the TPM off its state file can be copied or replaced: how tests roll a TPM's state back.
      await whileOff?.();
      await start();
    },
    async stop({ keepState = false } = {}) {
      await shutdown();
      await kill();
      if (!keepState) await rm(base, { recursive: true, force: true });
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // The daemonized swtpm is re-parented to PID 1, which may reap late (or never, in a container): a zombie
  // still answers kill(0) but has released its ports and state.
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000) * 2;
    if ((await portFree(port)) && (await portFree(port + 1))) return port;
  }
  throw new Error('no free port pair for swtpm');
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (!(await portFree(port))) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`swtpm did not listen on ${port}`);
}
