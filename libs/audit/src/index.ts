export { AuditModule } from './audit.module.js';
export { AuditService, REFUSAL_WINDOW_MS, REFUSAL_MAX_SOURCES } from './audit.service.js';
export type { AuditChange } from './audit.service.js';
export { AuditInterceptor, auditTarget } from './audit.interceptor.js';
export { Audited, auditedRoute, AUDITED, resultFields, bodyFields } from './audited.decorator.js';
export type { AuditedRoute, AuditChanges } from './audited.decorator.js';
export type { AuditActor, AuditTarget } from './audit-entry.js';
