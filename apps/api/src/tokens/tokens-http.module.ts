import { Inject, Logger, Module, type OnApplicationBootstrap } from '@nestjs/common';
import { join } from 'node:path';
import { AuthModule, ADMIN_TOKEN_FILE, TokenService } from '#otter/auth';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { TokensController } from './tokens.controller.js';

/** The token endpoints, plus the first-boot admin token so the API can be managed at all. */
@Module({
  imports: [AuthModule],
  controllers: [TokensController],
})
export class TokensHttpModule implements OnApplicationBootstrap {
  private readonly logger = new Logger('Tokens');

  constructor(
    private readonly tokens: TokenService,
    @Inject(OTTER_CONFIG) private readonly config: OtterConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    if (await this.tokens.ensureBootstrapAdminToken(this.config.dataDir)) {
      // Where the token is, never the token: logs are shipped and kept far more widely than the data dir.
      this.logger.warn(
        `No admin API token existed: created "bootstrap-admin" and wrote it to ${join(this.config.dataDir, ADMIN_TOKEN_FILE)} (mode 0600). Move it somewhere safe and delete the file.`,
      );
    }
  }
}
