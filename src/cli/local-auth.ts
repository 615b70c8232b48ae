import { userInfo } from 'node:os';
import { authPolicyOf } from '../auth/policy.js';
import { type Actor, localActor } from '../auth/principal.js';
import { type AuthService, createAuthService } from '../auth/service.js';
import type { Config } from '../config/schema.js';
import type { Database } from '../db/database.js';
import { openConfiguredDatabase } from '../db/open.js';

/**
 * Runs `work` with the service's database open (the same file, or the same PostgreSQL database of
 * `database.url`, whether or not the service runs), and closes it afterwards.
 */
export async function withDatabase<T>(config: Config, work: (database: Database) => Promise<T>): Promise<T> {
  const database = await openConfiguredDatabase(config);
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

/** The unix account running the CLI; a uid without a passwd entry (containers) is named by number. */
export function unixUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid${process.getuid?.() ?? 'unknown'}`;
  }
}

/**
 * The auth services as the CLI uses them: acting locally (whoever can open the data dir manages
 * users), audited as `cli:<unix user>` from `local`.
 */
export async function withLocalAuth<T>(config: Config, work: (auth: AuthService, actor: Actor) => Promise<T>): Promise<T> {
  return withDatabase(config, (database) =>
    work(createAuthService({ database, dataDir: config.data_dir, policy: authPolicyOf(config) }), localActor(unixUser())),
  );
}
