import { AsyncLocalStorage } from 'node:async_hooks';
import { sql, type Kysely, type Transaction } from 'kysely';

/**
 * Ambient transactions: while `runInTransaction(db, work)` runs, every query made through `db` (by any
 * repository, at any depth of calls) joins one transaction, so a management change and its audit row commit
 * or roll back together without threading a transaction through every service signature.
 *
 * A `db.transaction().execute(work)` inside becomes a SAVEPOINT: its work can still fail and retry on its own
 * (the TUF commit retries after a unique violation) without aborting the enclosing transaction. Outside
 * `runInTransaction` the handle is the plain database, unchanged.
 */
interface Scope {
  tx: Transaction<unknown>;
  /** Work to run once the transaction has committed; told when it rolled back instead. */
  afterCommit: Array<{ run: () => Promise<void>; rolledBack: () => void }>;
}

const ambient = new AsyncLocalStorage<Scope>();
const roots = new WeakMap<object, { transaction: Kysely<unknown>['transaction'] }>();
let savepoints = 0;

export function withAmbientTransactions<D>(db: Kysely<D>): Kysely<D> {
  const bound = new Map<PropertyKey, unknown>();
  const proxy = new Proxy(db, {
    get(target, prop) {
      const tx = ambient.getStore()?.tx;
      if (tx === undefined) {
        // Kysely's methods use private fields: they must run with the real instance as `this`.
        if (bound.has(prop)) return bound.get(prop);
        const value: unknown = Reflect.get(target, prop, target);
        if (typeof value !== 'function') return value;
        const method = (value as (...args: unknown[]) => unknown).bind(target);
        bound.set(prop, method);
        return method;
      }
      if (prop === 'transaction')
        return () => ({ execute: (work: (t: unknown) => unknown) => savepoint(tx, work) });
      const value: unknown = Reflect.get(tx, prop, tx);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(tx) : value;
    },
  });
  roots.set(proxy, db as unknown as Kysely<unknown>);
  return proxy;
}

/**
 * Runs `work` in one transaction of `db` (a handle from withAmbientTransactions): committed when it resolves,
 * rolled back when it throws. Inside an ambient transaction already, `work` simply joins it.
 */
export async function runInTransaction<D, R>(db: Kysely<D>, work: () => Promise<R>): Promise<R> {
  if (ambient.getStore() !== undefined) return work();
  const root = roots.get(db);
  if (!root) throw new Error('runInTransaction needs a database handle made by createDatabase');
  const after: Scope['afterCommit'] = [];
  let result: R;
  try {
    result = await root.transaction().execute((tx) => ambient.run({ tx, afterCommit: after }, work));
  } catch (error) {
    for (const effect of after) effect.rolledBack();
    throw error;
  }
  // Outside the scope: what runs now sees the committed state and joins no transaction.
  for (const effect of after) await effect.run();
  return result;
}

/**
 * Runs `effect` once what was written so far is committed: at once outside a transaction, after the commit
 * (before runInTransaction returns) inside one. A job queued for a row, for instance, must not reach a worker
 * before the row can be read. If the transaction rolls back the effect never runs and the promise resolves
 * to `ifRolledBack`.
 */
export function afterCommit<T>(effect: () => Promise<T>, ifRolledBack: T): Promise<T> {
  const scope = ambient.getStore();
  if (!scope) return effect();
  return new Promise<T>((resolve, reject) => {
    scope.afterCommit.push({
      run: () => effect().then(resolve, reject),
      rolledBack: () => resolve(ifRolledBack),
    });
  });
}

/** True inside runInTransaction. */
export function inAmbientTransaction(): boolean {
  return ambient.getStore() !== undefined;
}

async function savepoint<R>(tx: Transaction<unknown>, work: (t: unknown) => R | Promise<R>): Promise<R> {
  const name = sql.raw(`otter_sp_${++savepoints}`);
  await sql`savepoint ${name}`.execute(tx);
  try {
    const result = await work(tx);
    await sql`release savepoint ${name}`.execute(tx);
    return result;
  } catch (error) {
    await sql`rollback to savepoint ${name}`.execute(tx);
    await sql`release savepoint ${name}`.execute(tx);
    throw error;
  }
}
