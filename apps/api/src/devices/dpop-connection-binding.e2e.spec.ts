import 'reflect-metadata';
import { Agent, request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedNodeRow } from '#otter/db';
import { startApi, type ApiHarness } from '../testing/api-harness.js';
import { deviceCredentialsFor, type DeviceCredentialsForTest } from '../testing/software-device-key.js';

// OTTER_DPOP_CONNECTION_BINDING: a connection that presented a valid DPoP proof is bound to that key, so later
// requests on it skip the signature check. Attacked here from every other place a copied token could come
// from: another connection, and the same connection as a proxy would use it (forwarding headers).

interface Answer {
  status: number;
  reason?: string;
  port: number;
}

let api: ApiHarness;
let nodeId: string;
let device: DeviceCredentialsForTest;

beforeAll(async () => {
  api = await startApi({ OTTER_DPOP_CONNECTION_BINDING: 'true' });
  nodeId = await seedNodeRow(api.db, { hardwareId: 'rpi4' });
  device = await deviceCredentialsFor(api.app, nodeId);
});
afterAll(async () => api?.close());

/** One request over `agent`'s (single, kept-alive) connection; `port` tells connections apart. */
function send(
  agent: Agent,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, api.url);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      url,
      { method, agent, headers: { ...headers, ...(payload ? { 'content-type': 'application/json' } : {}) } },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c.toString()));
        res.on('end', () => {
          const parsed = text ? (JSON.parse(text) as { details?: { reason?: string } }) : {};
          resolve({
            status: res.statusCode ?? 0,
            reason: parsed.details?.reason,
            port: req.socket!.localPort!,
          });
        });
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A proof with the device key's header and a signature of zeros: only a bound connection lets it pass. */
function unsigned(proof: string): string {
  return `${proof.split('.').slice(0, 2).join('.')}.${Buffer.alloc(64).toString('base64url')}`;
}

describe('DPoP with connections bound to the key that proved itself on them', () => {
  it('binds the genuine connection only: a copied token is refused on any other, and wherever a proxy speaks', async () => {
    const genuine = new Agent({ keepAlive: true, maxSockets: 1 });
    const thief = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const path = '/api/v1/devices/me/instructions';
      const url = `${api.url}${path}`;
      const first = await device.headers('GET', url);
      const proven = await send(genuine, 'GET', path, first);
      expect(proven.status).toBe(200);
      const forged = { authorization: first.authorization!, dpop: unsigned(first.dpop!) };

      // The same connection, bound: a proof from the same key passes without a second signature check.
      const again = await send(genuine, 'GET', path, forged);
      expect([again.status, again.port]).toEqual([200, proven.port]);
      const pollPath = `/tuf/director/${nodeId}/metadata/timestamp.json`;
      const poll = await device.headers('GET', `${api.url}${pollPath}`);
      expect((await send(genuine, 'GET', pollPath, { ...poll, dpop: unsigned(poll.dpop) })).status).toBe(200);

      // Anyone else: another connection with the copied token gets a full check, and fails it.
      const reportsPath = '/api/v1/devices/me/reports';
      const stored = async (): Promise<number> =>
        (await api.db.selectFrom('device_reports').select('id').where('node_id', '=', nodeId).execute())
          .length;
      const before = await stored();
      const report = { kind: 'health', ok: false, event: 'forged', at: new Date().toISOString() };
      const sent = await device.headers('POST', `${api.url}${reportsPath}`);
      const attacks: Array<[string, Agent, Record<string, string>, string]> = [
        [
          'another connection, forged signature',
          thief,
          { ...sent, dpop: unsigned(sent.dpop) },
          'dpop_bad_signature',
        ],
        ['another connection, no proof', thief, { authorization: sent.authorization }, 'dpop_proof_missing'],
        [
          'the bound connection, as a pooling proxy would forward a stranger on it',
          genuine,
          { ...sent, dpop: unsigned(sent.dpop), 'x-forwarded-for': '203.0.113.9' },
          'dpop_bad_signature',
        ],
      ];
      for (const [what, agent, headers, reason] of attacks) {
        const answer = await send(agent, 'POST', reportsPath, headers, report);
        expect([what, answer.status, answer.reason]).toEqual([what, 401, reason]);
      }
      expect(await stored()).toBe(before);
      // The genuine first proof, replayed as captured from another connection.
      const replayed = await send(thief, 'GET', path, first);
      expect([replayed.status, replayed.reason]).toEqual([401, 'dpop_jti_reused']);
      // The thief's connection was never bound by its failures; the genuine one still works.
      expect(
        (await send(genuine, 'POST', reportsPath, sent, { ...report, ok: true, event: 'genuine' })).status,
      ).toBe(202);
      expect(await stored()).toBe(before + 1);
    } finally {
      genuine.destroy();
      thief.destroy();
    }
  });

  it('refuses a token bound to a key the node no longer holds, even on a connection bound to that key', async () => {
    // A re-enrolled board (or an identity renewed with a new key): the node's row now names another device key.
    const node = await seedNodeRow(api.db, { hardwareId: 'rpi4' });
    const old = await deviceCredentialsFor(api.app, node);
    const connection = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const path = '/api/v1/devices/me/instructions';
      const pollPath = `/tuf/director/${node}/metadata/timestamp.json`;
      const reportsPath = '/api/v1/devices/me/reports';
      const oldRequest = async (method: string, at: string, body?: unknown): Promise<Answer> =>
        send(connection, method, at, await old.headers(method, `${api.url}${at}`), body);
      expect((await oldRequest('GET', path)).status).toBe(200);
      expect((await oldRequest('GET', pollPath)).status).toBe(200);

      const current = await deviceCredentialsFor(api.app, node);
      const row = async () =>
        api.db.selectFrom('nodes').selectAll().where('id', '=', node).executeTakeFirst();
      const rowBefore = await row();
      const reports = async (): Promise<number> =>
        (await api.db.selectFrom('device_reports').select('id').where('node_id', '=', node).execute()).length;
      const reportsBefore = await reports();

      const refused = await oldRequest('GET', path);
      expect([refused.status, refused.reason]).toEqual([401, 'device_key_replaced']);
      const report = { kind: 'health', ok: true, event: 'old key', at: new Date().toISOString() };
      const posted = await oldRequest('POST', reportsPath, report);
      expect([posted.status, posted.reason]).toEqual([401, 'device_key_replaced']);
      // The director poll may serve its held answer for up to a second (docs/tuf.md), then refuses too.
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const polled = await oldRequest('GET', pollPath);
      expect([polled.status, polled.reason]).toEqual([401, 'device_key_replaced']);
      expect(await reports()).toBe(reportsBefore);
      expect(await row()).toEqual(rowBefore);

      // The node's current key works, on the same connection too.
      const fresh = await current.headers('GET', `${api.url}${path}`);
      expect((await send(connection, 'GET', path, fresh)).status).toBe(200);
      const freshPoll = await current.headers('GET', `${api.url}${pollPath}`);
      expect((await send(connection, 'GET', pollPath, freshPoll)).status).toBe(200);
    } finally {
      connection.destroy();
    }
  });
});
