import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** The PostgreSQL server the benches use: OTTER_TEST_DATABASE_URL, else scripts/test-services.sh's default. */
export const PG_BASE_URL = process.env.OTTER_TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * One statement on its own connection. A server that does not answer fails with the setting that fixes it.
 * @param {string} url
 * @param {string} text
 */
export async function pgQuery(url, text) {
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    return await client.query(text);
  } catch (error) {
    throw new Error(
      `PostgreSQL at ${url}: ${error instanceof Error ? error.message : String(error)}` +
        ' (set OTTER_TEST_DATABASE_URL, or BENCH_DIALECTS=sqlite)',
      { cause: error },
    );
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * `PostgreSQL 16.4`, or undefined when the server does not say.
 * @param {string} url
 */
export async function pgVersion(url) {
  try {
    const { rows } = await pgQuery(url, 'show server_version');
    return `PostgreSQL ${String(rows[0].server_version).split(' ')[0]}`;
  } catch {
    return undefined;
  }
}

/**
 * A fresh schema on the bench server, so a run never meets another's rows (or the tests'): its DATABASE_URL
 * (search_path set to it) and a line saying where it is. Its drop is pushed onto `local`, the caller's list
 * of what to undo.
 * @param {Array<() => Promise<unknown> | unknown>} local
 * @param {string} [baseUrl]
 * @returns {Promise<{ url: string, schema: string, where: string }>}
 */
export async function freshPgSchema(local, baseUrl = PG_BASE_URL) {
  const schema = `bench_${randomBytes(6).toString('hex')}`;
  await pgQuery(baseUrl, `CREATE SCHEMA ${schema}`);
  local.push(() => pgQuery(baseUrl, `DROP SCHEMA ${schema} CASCADE`));
  const url = new URL(baseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const server = (await pgVersion(baseUrl)) ?? 'PostgreSQL';
  return { url: url.toString(), schema, where: `${server} at ${url.host}${url.pathname}, schema ${schema}` };
}
