import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/** mulberry32: a small seeded PRNG, so every generated image is the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** `length` incompressible bytes from the PRNG. */
export function randomBytesFrom(random: () => number, length: number): Buffer {
  const words = new Uint32Array(Math.ceil(length / 4));
  for (let i = 0; i < words.length; i++) words[i] = (random() * 4294967296) >>> 0;
  return Buffer.from(words.buffer, 0, length);
}

const WORDS = Array.from({ length: 256 }, (_, i) => `w${(i * 2654435761) % 99991}`.slice(0, 2 + (i % 7)));

/** Compressible, text-like bytes (what most of a root filesystem is: code, configs, documentation). */
export function textFrom(random: () => number, length: number): Buffer {
  const parts: string[] = [];
  let size = 0;
  while (size < length) {
    const word = WORDS[Math.floor(random() * WORDS.length)]!;
    const sep = random() < 0.1 ? '\n' : ' ';
    parts.push(word, sep);
    size += word.length + 1;
  }
  return Buffer.from(parts.join('')).subarray(0, length);
}

/** What a "file" of the source becomes in the target. */
export type FileFate =
  | 'keep'
  | 'edit' // a few bytes changed in place every ~700 bytes: bsdiff material
  | 'replace' // fresh random bytes: nothing to diff against, RAW material
  | 'insert' // 1000 bytes inserted in the middle, the rest shifted (and cut at the file's end)
  | 'move' // holds another source file's blocks: a COPY from elsewhere
  | 'delete' // zeroed
  | 'fill'; // a repetitive 0xAB fill, which must never reach bsdiff

interface SourceFile {
  offset: number;
  length: number;
  kind: 'text' | 'binary' | 'zero';
}

export interface FilesystemLikePairOptions {
  dir: string;
  /** Source image length; a multiple of 4 KiB. The target is this plus an appended, unaligned tail. */
  sizeBytes: number;
  seed: number;
  /** Fraction of files that change in the target (default 0.12). */
  changeRate?: number;
}

export interface FilesystemLikePair {
  sourceFile: string;
  targetFile: string;
  sourceLength: number;
  targetLength: number;
  fates: Record<FileFate, number>;
}

/**
 * Writes a pair of filesystem-like images, streamed file by file (never a whole image in memory): "files"
 * of 16 KiB..1 MiB of text, binary or zeros, and a target where some files are edited, replaced, shifted by an
 * insertion, moved, deleted or turned into a fill pattern, with a 300 KiB + 123 byte tail appended. Every fate
 * occurs at least once.
 */
export function writeFilesystemLikePair(options: FilesystemLikePairOptions): FilesystemLikePair {
  const { dir, sizeBytes, seed } = options;
  if (sizeBytes % 4096 !== 0 || sizeBytes < 4 * 1024 * 1024)
    throw new Error('sizeBytes: a multiple of 4 KiB, >= 4 MiB');
  const changeRate = options.changeRate ?? 0.12;
  const random = seededRandom(seed);
  const files: SourceFile[] = [];
  for (let offset = 0; offset < sizeBytes;) {
    const blocks = 4 + Math.floor(random() * random() * 252);
    const length = Math.min(blocks * 4096, sizeBytes - offset);
    const r = random();
    files.push({ offset, length, kind: r < 0.55 ? 'text' : r < 0.8 ? 'binary' : 'zero' });
    offset += length;
  }

  const sourceFile = join(dir, 'source.img');
  const targetFile = join(dir, 'target.img');
  const source = openSync(sourceFile, 'w');
  for (const file of files) {
    const content =
      file.kind === 'text'
        ? textFrom(random, file.length)
        : file.kind === 'binary'
          ? randomBytesFrom(random, file.length)
          : Buffer.alloc(file.length);
    writeSync(source, content, 0, content.length, file.offset);
  }
  closeSync(source);

  // Fates: every special one at least once (on a file that suits it), then at random by changeRate.
  const fates: FileFate[] = files.map(() => 'keep');
  const special: FileFate[] = ['edit', 'replace', 'insert', 'move', 'delete', 'fill'];
  const suits = (fate: FileFate, file: SourceFile): boolean =>
    fate === 'fill'
      ? file.kind === 'zero'
      : fate === 'edit' || fate === 'insert'
        ? file.kind === 'text'
        : file.kind !== 'zero';
  for (const fate of special) {
    const candidates = files.map((_, i) => i).filter((i) => fates[i] === 'keep' && suits(fate, files[i]!));
    const pick = candidates[Math.floor(random() * candidates.length)];
    if (pick !== undefined) fates[pick] = fate;
  }
  for (let i = 0; i < files.length; i++) {
    if (fates[i] !== 'keep' || random() >= changeRate) continue;
    const fate = special[Math.floor(random() * special.length)]!;
    if (suits(fate, files[i]!)) fates[i] = fate;
  }

  const src = openSync(sourceFile, 'r');
  const target = openSync(targetFile, 'w');
  const readSource = (offset: number, length: number): Buffer => {
    const buf = Buffer.alloc(length);
    readSync(src, buf, 0, length, offset);
    return buf;
  };
  files.forEach((file, i) => {
    let content: Buffer;
    switch (fates[i]!) {
      case 'keep':
        content = readSource(file.offset, file.length);
        break;
      case 'edit':
        content = readSource(file.offset, file.length);
        for (
          let at = Math.floor(random() * 700);
          at < content.length;
          at += 400 + Math.floor(random() * 600)
        ) {
          content[at] = 0x41 + Math.floor(random() * 26);
        }
        break;
      case 'replace':
        content = randomBytesFrom(random, file.length);
        break;
      case 'insert': {
        const original = readSource(file.offset, file.length);
        const middle = Math.floor(file.length / 2);
        content = Buffer.concat([
          original.subarray(0, middle),
          textFrom(random, 1000),
          original.subarray(middle),
        ]);
        content = content.subarray(0, file.length);
        break;
      }
      case 'move': {
        // Another source file's leading blocks (a file rewritten to blocks the allocator found elsewhere).
        const other = files.find((f, j) => j !== i && f.kind !== 'zero' && f.length >= file.length) ?? file;
        content = readSource(other.offset, file.length);
        break;
      }
      case 'delete':
        content = Buffer.alloc(file.length);
        break;
      case 'fill':
        content = Buffer.alloc(file.length, 0xab);
        break;
    }
    writeSync(target, content, 0, content.length, file.offset);
  });
  const tail = textFrom(random, 300 * 1024 + 123);
  writeSync(target, tail, 0, tail.length, sizeBytes);
  closeSync(target);
  closeSync(src);

  const counts = { keep: 0, edit: 0, replace: 0, insert: 0, move: 0, delete: 0, fill: 0 };
  for (const fate of fates) counts[fate]++;
  return {
    sourceFile,
    targetFile,
    sourceLength: sizeBytes,
    targetLength: sizeBytes + tail.length,
    fates: counts,
  };
}
