import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DeltaBuildDto, ReleaseDto } from '#otter/contracts';

/** Images that look like releases of one system: shared content, zero runs, scattered edits, a moved range. */
export function imagePair(size: number): { source: Buffer; target: Buffer } {
  const source = randomBytes(size);
  source.fill(0, size / 4, size / 4 + size / 16);
  const target = Buffer.from(source);
  for (let i = 0; i < 12; i++) {
    const at = Math.floor((size * i) / 12) + 777;
    target[at] = target[at]! ^ 0xff;
  }
  randomBytes(size / 32).copy(target, size / 2);
  // A long stretch where every block changes a little: bsdiff work worth several extent jobs.
  for (let at = size / 2 + size / 32; at < (size * 7) / 8; at += 3000) target[at] = target[at]! ^ 0x5a;
  source.copy(target, (size * 3) / 4 + 4096, (size * 3) / 4, size - 4096);
  return { source, target };
}

/** Publishes a release the way CI does (multipart POST), so the release hook queues its delta builds. */
export async function postRelease(
  url: string,
  token: string,
  hardware: string,
  version: string,
  image: Buffer,
): Promise<ReleaseDto> {
  const form = new FormData();
  form.append('hardware', hardware);
  form.append('version', version);
  form.append('image', new Blob([new Uint8Array(image)]), 'image.bin');
  const res = await fetch(`${url}/api/v1/releases`, {
    method: 'POST',
    body: form,
    headers: { authorization: `Bearer ${token}` },
  });
  if (res.status !== 201)
    throw new Error(`release ${hardware} ${version}: ${res.status} ${await res.text()}`);
  return (await res.json()) as ReleaseDto;
}

export async function listDeltas(url: string, token: string, hardware?: string): Promise<DeltaBuildDto[]> {
  const query = hardware ? `?hardware=${hardware}` : '';
  const res = await fetch(`${url}/api/v1/deltas${query}`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`GET /api/v1/deltas: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { deltas: DeltaBuildDto[] }).deltas;
}

/** Polls until `check` returns a value (not undefined), or fails with what it saw last. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Waits until the one build of hardware from -> to reaches one of `states`. */
export function waitForBuild(
  url: string,
  token: string,
  hardware: string,
  from: string,
  to: string,
  states: DeltaBuildDto['state'][],
  timeoutMs = 20_000,
): Promise<DeltaBuildDto> {
  let last: DeltaBuildDto | undefined;
  return waitFor(
    `delta ${hardware} ${from} -> ${to} to be ${states.join(' or ')}`,
    async () => {
      last = (await listDeltas(url, token, hardware)).find(
        (d) => d.from.version === from && d.to.version === to,
      );
      return last && states.includes(last.state) ? last : undefined;
    },
    timeoutMs,
  ).catch((e: Error) => {
    throw new Error(`${e.message}; last seen: ${JSON.stringify(last)}`);
  });
}
