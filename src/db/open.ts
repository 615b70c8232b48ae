import type { Config } from '../config/schema.js';
import { type Database, type DatabaseLogger, databaseFile, openDatabase } from './database.js';
import { openPostgres } from './postgres.js';

/**
 * The service's database as the configuration names it, for the service and every CLI command: the
 * PostgreSQL database of `database.url` (the cluster mode), or else the embedded SQLite file in the
 * data dir. Either way migrated to the newest schema.
 */
export function openConfiguredDatabase(config: Config, log?: DatabaseLogger): Promise<Database> {
  if (config.database.url !== null) return openPostgres(config.database.url, log);
  return openDatabase({ file: databaseFile(config.data_dir), log, backupDir: config.backup.dir });
}

/**
 * The node whose drives a queue serves (src/db/sqlite-queue.ts): this process's `cluster.node_name`
 * on the shared PostgreSQL database, none on the embedded one, whose jobs are all this host's.
 */
export function queueNodeOf(config: Config, database: Database): string | null {
  return database.dialect === 'postgres' ? config.cluster.node_name : null;
}
