import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditActor } from './audit-entry.js';

/**
 * The management request being served: who acts, from where, under which request id. AuditInterceptor sets it
 * around the handler, so services record their audit rows without extra parameters and controllers stay thin.
 */
export interface AuditRequestContext {
  actor: AuditActor | null;
  requestId: string | null;
  source: string | null;
  /** Set once the request's audit row is written (a service that records its own row in its own transaction). */
  recorded: boolean;
}

const storage = new AsyncLocalStorage<AuditRequestContext>();

export function runWithAuditContext<T>(context: AuditRequestContext, work: () => T): T {
  return storage.run(context, work);
}

export function currentAuditContext(): AuditRequestContext | undefined {
  return storage.getStore();
}
