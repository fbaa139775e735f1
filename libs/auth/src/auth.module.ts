import { Module } from '@nestjs/common';
import { ApiTokenGuard } from './api-token.guard.js';
import { ApiTokenRepository } from './api-token.repository.js';
import { TokenService } from './token.service.js';

/** Management API tokens. Needs the global DbModule (DB) from the application. */
@Module({
  providers: [ApiTokenRepository, TokenService, ApiTokenGuard],
  exports: [TokenService, ApiTokenGuard],
})
export class AuthModule {}
