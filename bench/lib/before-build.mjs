// The "before" of a before/after bench: the build of an earlier commit, made once and kept in .otter-bench/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The directory of the build to compare against, or undefined for none: BENCH_BEFORE_BUILD_DIR (a directory
 * with dist/, package.json and node_modules, as BENCH_BUILD_DIR), else BENCH_BEFORE_REF, a commit of this
 * repository exported with `git archive` and built with its own tsconfig.build.json (about a minute, once).
 * @param {string} root  this repository
 * @param {(message: string) => void} log
 */
export function beforeBuildDir(root, log) {
  if (process.env.BENCH_BEFORE_BUILD_DIR) return resolve(process.env.BENCH_BEFORE_BUILD_DIR);
  const ref = process.env.BENCH_BEFORE_REF;
  if (!ref) return undefined;
  const sha = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], {
    cwd: root,
    encoding: 'utf8',
  }).trim();
  const dir = join(root, '.otter-bench', `before-${sha.slice(0, 12)}`);
  if (existsSync(join(dir, 'dist', 'apps', 'api', 'src', 'main.js'))) return dir;
  log(`building ${ref} (${sha.slice(0, 12)}) into ${dir}, once`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  execFileSync('sh', ['-c', `git archive ${sha} | tar -x -C "${dir}"`], { cwd: root, stdio: 'inherit' });
  symlinkSync(resolve(root, 'node_modules'), join(dir, 'node_modules'));
  execFileSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: dir,
      stdio: 'inherit',
    },
  );
  return dir;
}
