// How large the metadata a client downloads gets as targets accumulate, for several hashed-bin sizes.
// Usage: node bench/tuf-metadata-size.mjs [targets=10000]   (run by `make bench` after a build)
import 'reflect-metadata';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConfigModule, loadConfig } from '#otter/config';
import { DbModule } from '#otter/db';
import { IMAGE_REPOSITORY, ImageRepositoryInitializer, TufModule } from '#otter/tuf';

const total = Number(process.argv[2] ?? 10_000);
const sha = (s) => createHash('sha256').update(s).digest('hex');

async function measure(binBits) {
  const dir = mkdtempSync(join(tmpdir(), 'otter-tufsize-'));
  const config = loadConfig({
    OTTER_DATA_DIR: dir,
    OTTER_ENV: 'test',
    OTTER_LOG_LEVEL: 'silent',
    OTTER_TUF_BIN_BITS: String(binBits),
  });
  class BenchModule {}
  Module({ imports: [ConfigModule.forRoot(config), DbModule, TufModule] })(BenchModule);
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  await app.get(ImageRepositoryInitializer).initialize();
  const repo = app.get(IMAGE_REPOSITORY);
  const started = Date.now();
  const batch = 250;
  for (let i = 0; i < total; i += batch) {
    const targets = [];
    for (let j = i; j < Math.min(total, i + batch); j++) {
      const hw = `board-${j % 20}`;
      const version = `${Math.floor(j / 20 / 100)}.${Math.floor(j / 20) % 100}.0`;
      targets.push({
        path: `images/${hw}/${version}`,
        length: 100_000_000 + j,
        sha256: sha(`image ${j}`),
        blobKey: `bench/${j}`,
        custom: {
          hardware: hw,
          version,
          measurements: { 4: sha(`4 ${j}`), 8: sha(`8 ${j}`), 9: sha(`9 ${j}`) },
        },
      });
    }
    await repo.addTargets(targets);
  }
  const seconds = (Date.now() - started) / 1000;
  const ts = await repo.metadataFile('timestamp');
  const snapMeta = JSON.parse(ts).signed.meta['snapshot.json'];
  const snapshot = await repo.metadataFile('snapshot', snapMeta.version);
  const versions = JSON.parse(snapshot).signed.meta;
  const fileSize = async (role) =>
    Buffer.byteLength(await repo.metadataFile(role, versions[`${role}.json`].version));
  const bins = Object.keys(versions)
    .filter((k) => k.startsWith('images-bin'))
    .map((k) => k.replace(/\.json$/, ''));
  const binSizes = await Promise.all(bins.map(fileSize));
  const row = {
    binBits,
    bins: bins.length,
    timestamp: Buffer.byteLength(ts),
    snapshot: Buffer.byteLength(snapshot),
    targets: await fileSize('targets'),
    images: await fileSize('images'),
    binAvg: Math.round(binSizes.reduce((a, b) => a + b, 0) / binSizes.length),
    binMax: Math.max(...binSizes),
    publishSeconds: seconds,
  };
  row.firstPoll = row.timestamp + row.snapshot + row.targets + row.images + row.binMax;
  await app.close();
  rmSync(dir, { recursive: true, force: true });
  return row;
}

const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`TUF metadata sizes with ${total} image targets (3 PCR measurements each)\n`);
console.log(
  'bin bits | bins | timestamp | snapshot | targets | images | one bin (avg / max) | first poll, one target | publish time',
);
const unbinned = { perTarget: 0 };
for (const bits of [4, 6, 8]) {
  const r = await measure(bits);
  unbinned.perTarget = (r.binAvg * r.bins) / total;
  console.log(
    `${String(bits).padStart(8)} | ${String(r.bins).padStart(4)} | ${kib(r.timestamp).padStart(9)} | ${kib(r.snapshot).padStart(8)} | ${kib(r.targets).padStart(7)} | ${kib(r.images).padStart(6)} | ${`${kib(r.binAvg)} / ${kib(r.binMax)}`.padStart(19)} | ${kib(r.firstPoll).padStart(22)} | ${r.publishSeconds.toFixed(1)} s`,
  );
}
console.log(
  `\nWithout delegation a single targets.json would hold every entry: about ${kib(unbinned.perTarget * total)}.`,
);
