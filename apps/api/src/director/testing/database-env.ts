import type { DatabaseConfig } from '#otter/config';

/** The api's environment for one of testDatabases()'s databases. */
export function databaseEnv(database: DatabaseConfig): Record<string, string> {
  return {
    DATABASE_URL: database.dialect === 'postgres' ? database.url : `sqlite:${database.file}`,
  };
}
