import { Module } from '@nestjs/common';
import { AuditModule } from '#otter/audit';
import { ApiTokenGuard } from './api-token.guard.js';
import { ApiTokenRepository } from './api-token.repository.js';
import { TokenService } from './token.service.js';

/** Management API tokens. Needs the global DbModule (DB) from the application. */
@Module({
  imports: [AuditModule],
  providers: [ApiTokenRepository, TokenService, ApiTokenGuard],
  // AuditModule goes with the guard: every module whose routes it guards needs AuditService to build it.
  exports: [TokenService, ApiTokenGuard, AuditModule],
})
export class AuthModule {}
