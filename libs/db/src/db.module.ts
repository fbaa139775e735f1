import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { createDatabase, migrateToLatest, type Db } from './create-database.js';

export const DB = Symbol('DB');

@Global()
@Module({
  providers: [
    {
      provide: DB,
      inject: [OTTER_CONFIG],
      useFactory: async (config: OtterConfig): Promise<Db> => {
        const db = createDatabase(config.database);
        await migrateToLatest(db);
        return db;
      },
    },
  ],
  exports: [DB],
})
export class DbModule implements OnApplicationShutdown {
  constructor(@Inject(DB) private readonly db: Db) {}

  async onApplicationShutdown(): Promise<void> {
    await this.db.destroy();
  }
}
