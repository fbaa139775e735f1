import 'reflect-metadata';
import { createHash, randomBytes, X509Certificate } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerdictDto } from '#otter/contracts';
import { startSoftwareTpm, Tpm2Tools, type SoftwareTpm } from '#otter/tpm';
import { startApi, type ApiHarness } from '../apps/api/src/testing/api-harness.js';
import { expectedPcrAfterBoot } from '../apps/agent/src/platform/measured-boot.js';
import { runBuiltAgent, type AgentRun } from '../apps/agent/src/testing/agent-command.js';
import { builtAgentMain } from '../apps/agent/src/testing/agent-daemon.js';
import { runOtter, type CliRun } from '../apps/cli/src/testing/cli-run.js';

// The built agent as a node runs it (a separate process, real swtpm TPMs) against the real api, and the
// operator on the other side using `otter node ...`: the whole enrollment, approval, attestation and
// revocation story through the two command lines.
//
// The agent runs from <OTTER_TEST_DIST_ROOT>/dist (default: this repository, which `make test` builds first).
// To run against a scratch build, point OTTER_TEST_DIST_ROOT at a directory holding that dist/, a copy of
// package.json (for the #otter/* imports) and a node_modules symlink.

const caDir = mkdtempSync(join(tmpdir(), 'otter-tpm-ca-'));
const trustDir = mkdtempSync(join(tmpdir(), 'otter-tpm-trust-'));
const work = mkdtempSync(join(tmpdir(), 'otter-agent-cli-'));
const imageA = randomBytes(100_000);
const imageB = randomBytes(100_000);
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const slotA = join(work, 'slot-a.img');
const slotB = join(work, 'slot-b.img');
writeFileSync(slotA, imageA);
writeFileSync(slotB, imageB);

let api: ApiHarness;
let admin: string;
let tpm: SoftwareTpm;
let allowedTpm: SoftwareTpm;

function otterAgent(args: string[]): Promise<AgentRun> {
  return runBuiltAgent(args, work);
}

function otter(args: string[]): Promise<CliRun> {
  return runOtter(args, api.url, admin, work);
}

interface ListedNode {
  id: string;
  hardware: string;
  state: string;
  lastVerdict: 'pass' | 'fail' | null;
  lastVerdictReason: string | null;
  lastVerdictAgeSeconds: number | null;
}

async function listedNode(id: string): Promise<ListedNode | undefined> {
  const run = await otter(['node', 'list', '--json']);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { nodes: ListedNode[] }).nodes.find((n) => n.id === id);
}

/** The one JSON line a successful agent command prints. */
function line<T>(run: AgentRun | CliRun): T {
  expect(run.stdout.trimEnd().split('\n')).toHaveLength(1);
  return JSON.parse(run.stdout) as T;
}

beforeAll(async () => {
  builtAgentMain(); // throws, saying what to do, when the agent is not built
  [tpm, allowedTpm] = await Promise.all([startSoftwareTpm({ caDir }), startSoftwareTpm({ caDir })]);
  for (const f of tpm.ca.certificateFiles) copyFileSync(f, join(trustDir, basename(f)));
  api = await startApi({
    OTTER_TPM_CA_DIR: trustDir,
    REDIS_URL: process.env.OTTER_TEST_REDIS_URL!,
    OTTER_QUEUE_PREFIX: `t${randomBytes(5).toString('hex')}`,
  });
  admin = readFileSync(join(api.config.dataDir, 'admin-token'), 'utf8').trim();
  await api.publish('images/board/1.0.0', imageA, {
    hardware: 'board',
    version: '1.0.0',
    measurements: { 9: expectedPcrAfterBoot(sha(imageA)) },
  });
}, 60_000);
afterAll(async () => {
  await api?.close();
  await Promise.all([tpm, allowedTpm].map((t) => t?.stop()));
});

describe('otter-agent enroll/boot/attest/report, operated with otter node', () => {
  // The re-imaging test moves the node to a fresh state directory.
  let stateDir = join(work, 'node-1');
  let nodeId: string;

  it('enroll waits for approval and says how to get it; after `otter node approve` it makes the node active', async () => {
    const enroll = [
      'enroll',
      '--server',
      api.url,
      '--tpm',
      tpm.tcti,
      '--state-dir',
      stateDir,
      '--hardware',
      'board',
      '--version',
      '1.0.0',
    ];
    const pending = await otterAgent(enroll);
    expect(pending.code, pending.stderr).toBe(0);
    const first = line<{ nodeId: string; state: string; certificateNotAfter?: string }>(pending);
    nodeId = first.nodeId;
    expect(first).toEqual({ nodeId, state: 'pending-approval' });
    expect(pending.stderr).toContain(`otter node approve ${nodeId}`);
    expect(pending.stderr).toContain('otter-agent enroll');

    // Not admitted yet: the node has no identity, so it cannot attest.
    const early = await otterAgent(['attest', '--state-dir', stateDir]);
    expect(early).toMatchObject({ code: 1, stdout: '' });
    expect(early.stderr).toMatch(/^otter-agent: NO_IDENTITY: /);

    expect(await otter(['node', 'approve', nodeId])).toEqual({
      code: 0,
      stdout: `${nodeId}: approved\n`,
      stderr: '',
    });

    const active = await otterAgent(enroll);
    expect(active).toMatchObject({ code: 0, stderr: '' });
    const second = line<{ nodeId: string; state: string; certificateNotAfter: string }>(active);
    expect(second).toMatchObject({ nodeId, state: 'active' });
    expect(Date.parse(second.certificateNotAfter)).toBeGreaterThan(Date.now());
  });

  it('boot measures the slot image, attest exits 0 with a passing verdict, and node list shows it', async () => {
    const boot = await otterAgent(['boot', '--state-dir', stateDir, '--slot', slotA]);
    expect(boot).toMatchObject({ code: 0, stderr: '' });
    expect(line(boot)).toEqual({ pcr: 9, digest: sha(imageA) });

    const attest = await otterAgent(['attest', '--state-dir', stateDir, '--version', '1.0.0']);
    expect(attest).toMatchObject({ code: 0, stderr: '' });
    const verdict = line<VerdictDto>(attest);
    expect(verdict).toMatchObject({ nodeId, passed: true, releaseVersion: '1.0.0' });
    expect(verdict.pcrValues['9']).toBe(expectedPcrAfterBoot(sha(imageA)));

    const listed = await listedNode(nodeId);
    expect(listed).toMatchObject({ hardware: 'board', state: 'active', lastVerdict: 'pass' });
    expect(listed!.lastVerdictAgeSeconds).toEqual(expect.any(Number));
    expect(listed!.lastVerdictAgeSeconds).toBeGreaterThanOrEqual(0);
    expect(listed!.lastVerdictAgeSeconds).toBeLessThan(30);
  });

  it('report --failed of an integrity check fails the node until it attests clean again', async () => {
    const report = await otterAgent([
      'report',
      '--state-dir',
      stateDir,
      '--kind',
      'integrity',
      '--failed',
      '--event',
      'dm-verity',
      '--detail',
      'block 1234 mismatch',
    ]);
    expect(report).toMatchObject({ code: 0, stderr: '' });
    expect(line(report)).toMatchObject({
      kind: 'integrity',
      ok: false,
      event: 'dm-verity',
      detail: 'block 1234 mismatch',
    });
    const listed = await listedNode(nodeId);
    expect(listed).toMatchObject({ lastVerdict: 'fail' });
    expect(listed!.lastVerdictReason).toMatch(/integrity failure reported: dm-verity/);

    expect((await otterAgent(['attest', '--state-dir', stateDir])).code).toBe(0);
    expect(await listedNode(nodeId)).toMatchObject({ lastVerdict: 'pass' });
  });

  it('after a reboot into a different image, attest prints the failed verdict and exits 3', async () => {
    await tpm.restart({ clean: true });
    const boot = await otterAgent(['boot', '--state-dir', stateDir, '--slot', slotB, '--pcr', '9']);
    expect(line(boot)).toEqual({ pcr: 9, digest: sha(imageB) });

    const attest = await otterAgent(['attest', '--state-dir', stateDir, '--version', '1.0.0']);
    expect(attest.code).toBe(3);
    const verdict = line<VerdictDto>(attest);
    expect(verdict).toMatchObject({ nodeId, passed: false });
    expect(verdict.reason).toMatch(/PCR 9 differs from the release reference/);
    expect(attest.stderr).toMatch(/^otter-agent: attestation failed: .*PCR 9/);
    expect(await listedNode(nodeId)).toMatchObject({ state: 'active', lastVerdict: 'fail' });
  });

  it('an EK allow-listed with `otter node allow --ek-certificate` enrolls straight to active, without approval', async () => {
    const probe = new Tpm2Tools({ tcti: allowedTpm.tcti, stateDir: mkdtempSync(join(work, 'probe-')) });
    const certificate = await probe.readEkCertificate('ecc');
    // A serial alone names no certificate: every manufacturer CA may issue it.
    const serialOnly = await otter([
      'node',
      'allow',
      '--ek-serial',
      new X509Certificate(certificate).serialNumber,
    ]);
    expect(serialOnly.code).toBe(1);
    expect(serialOnly.stderr).toMatch(/only with its issuer/);
    const certificateFile = join(work, 'allowed-ek.der');
    writeFileSync(certificateFile, certificate);
    expect(await otter(['node', 'allow', '--ek-certificate', certificateFile, '--note', 'batch 7'])).toEqual({
      code: 0,
      stdout: 'allowed\n',
      stderr: '',
    });

    const run = await otterAgent([
      'enroll',
      '--server',
      api.url,
      '--tpm',
      allowedTpm.tcti,
      '--state-dir',
      join(work, 'node-2'),
      '--hardware',
      'board',
      '--ek',
      'ecc',
    ]);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const result = line<{ nodeId: string; state: string }>(run);
    expect(result.state).toBe('active');
    expect(result.nodeId).not.toBe(nodeId);
    expect(await listedNode(result.nodeId)).toMatchObject({ state: 'active', lastVerdict: null });
  });

  it('a re-imaged board: enroll is refused until `otter node re-enroll`, then the same TPM gets its node back, once', async () => {
    const reimaged = join(work, 'node-1-reimaged');
    const enroll = (dir: string) =>
      otterAgent([
        'enroll',
        '--server',
        api.url,
        '--tpm',
        tpm.tcti,
        '--state-dir',
        dir,
        '--hardware',
        'board',
      ]);
    const refused = await enroll(reimaged);
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(/^otter-agent: NODE_ALREADY_ENROLLED: this TPM already belongs to a node/);
    expect(refused.stderr).toContain('otter node re-enroll NODE');

    const opened = await otter(['node', 're-enroll', nodeId]);
    expect(opened).toMatchObject({ code: 0, stderr: '' });
    expect(opened.stdout).toMatch(new RegExp(`^${nodeId}: active; re-enrollment open until `));

    const back = await enroll(reimaged);
    expect(back).toMatchObject({ code: 0, stderr: '' });
    expect(line(back)).toMatchObject({ nodeId, state: 'active' });
    // Same node, same history; it attests with its new AK once it boots the release again.
    await tpm.restart({ clean: true });
    expect((await otterAgent(['boot', '--state-dir', reimaged, '--slot', slotA])).code).toBe(0);
    const attest = await otterAgent(['attest', '--state-dir', reimaged, '--version', '1.0.0']);
    expect(attest).toMatchObject({ code: 0, stderr: '' });
    expect(line<VerdictDto>(attest)).toMatchObject({ nodeId, passed: true });

    // Once: a second re-imaging needs a second admin action.
    const again = await enroll(join(work, 'node-1-reimaged-again'));
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/NODE_ALREADY_ENROLLED/);
    stateDir = reimaged;
  });

  it('after `otter node revoke`, attest exits 1 with UNAUTHENTICATED', async () => {
    expect(await otter(['node', 'revoke', nodeId])).toEqual({
      code: 0,
      stdout: `${nodeId}: revoked\n`,
      stderr: '',
    });
    const attest = await otterAgent(['attest', '--state-dir', stateDir]);
    expect(attest).toMatchObject({ code: 1, stdout: '' });
    expect(attest.stderr).toMatch(/^otter-agent: UNAUTHENTICATED: /);
    expect(attest.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(await listedNode(nodeId)).toMatchObject({ state: 'revoked' });
  });

  it('refuses an http:// server that is not loopback; --insecure-http lets it through, warning on every run', async () => {
    // 0.0.0.0 reaches this host's api, but by its name it is not loopback: the rule sees a remote server.
    const remote = api.url.replace('127.0.0.1', '0.0.0.0');
    const root = join(work, 'fetch-root.json');
    writeFileSync(root, await (await fetch(`${api.url}/tuf/image/metadata/1.root.json`)).text());
    const fetchTo = (out: string): string[] => [
      'fetch',
      ...['--server', remote, '--root', root, '--target', 'images/board/1.0.0'],
      ...['--out', join(work, out), '--state-dir', join(work, `state-${out}`)],
    ];
    const refused = await otterAgent(fetchTo('refused.img'));
    expect(refused).toMatchObject({ code: 1, stdout: '' });
    expect(refused.stderr).toMatch(
      /^otter-agent: INSECURE_SERVER: refusing http:\/\/0\.0\.0\.0:\d+: tokens would cross the network in clear.*--insecure-http/,
    );
    expect(existsSync(join(work, 'refused.img'))).toBe(false);
    for (const out of ['lab-1.img', 'lab-2.img']) {
      const lab = await otterAgent(['--insecure-http', ...fetchTo(out)]);
      expect(lab.code, lab.stderr).toBe(0);
      expect(lab.stderr).toMatch(
        /^otter-agent: WARNING: --insecure-http: talking to http:\/\/0\.0\.0\.0:\d+ over plain HTTP/,
      );
      expect(readFileSync(join(work, out)).equals(imageA)).toBe(true);
    }
  });

  it('usage errors and a state dir with no enrollment exit 1 with a clear line; help says boot stands in for firmware', async () => {
    const empty = mkdtempSync(join(work, 'empty-'));
    const none = await otterAgent(['attest', '--state-dir', empty]);
    expect(none).toEqual({
      code: 1,
      stdout: '',
      stderr: `otter-agent: NOT_ENROLLED: no enrollment in ${empty}: run \`otter-agent enroll\` first\n`,
    });
    const both = await otterAgent([
      'report',
      '--state-dir',
      stateDir,
      '--kind',
      'health',
      '--ok',
      '--failed',
      '--event',
      'x',
    ]);
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/'--ok' cannot be used with option '--failed'/);
    const neither = await otterAgent(['report', '--state-dir', stateDir, '--kind', 'health', '--event', 'x']);
    expect(neither).toMatchObject({
      code: 1,
      stderr: 'otter-agent: INVALID_ARGUMENT: give --ok or --failed\n',
    });
    const pcr = await otterAgent(['boot', '--state-dir', stateDir, '--slot', slotA, '--pcr', '24']);
    expect(pcr.code).toBe(1);
    expect(pcr.stderr).toMatch(/a PCR index, 0\.\.23/);

    const help = await otterAgent(['boot', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/stands in for the firmware/);
    const attestHelp = await otterAgent(['attest', '--help']);
    expect(attestHelp.stdout).toMatch(/3 the verdict failed/);
  });
});
