import type { AuditEntry } from '../../src/audit/model.js';
import { type PasswordHasher, bcryptHasher } from '../../src/auth/password.js';
import type { AuthPolicy } from '../../src/auth/policy.js';
import { type Actor, type ClientInfo, localActor } from '../../src/auth/principal.js';
import { type AuthService, createAuthService } from '../../src/auth/service.js';
import type { Database } from '../../src/db/database.js';
import { type ManualClock, manualClock, withDatabase } from '../db/support.js';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export const ADMIN_PASSWORD = 'Admin-passw0rd-2026';
export const USER_PASSWORD = 'Operat0r-secret-pass';
export const CLIENT: ClientInfo = { ip: '192.0.2.10', userAgent: 'Mozilla/5.0 (test)' };
export const CLI: Actor = localActor('tester');

/** A hasher that is bcrypt itself, counting the hashes it was asked to check against. */
export function countingHasher(): PasswordHasher & { verified: string[] } {
  const verified: string[] = [];
  return {
    verified,
    hash: (password) => bcryptHasher.hash(password),
    verify: (password, hash) => {
      verified.push(hash);
      return bcryptHasher.verify(password, hash);
    },
  };
}

export interface AuthFixture {
  auth: AuthService;
  clock: ManualClock;
  database: Database;
  dir: string;
  /** Audit entries, oldest first. */
  auditEntries(filter?: { eventType?: string; action?: string }): Promise<AuditEntry[]>;
}

/** An auth service over a fresh SQLite file in a temp data dir, on a manual clock. */
export async function withAuth<T>(
  work: (fixture: AuthFixture) => Promise<T>,
  options: { policy?: Partial<AuthPolicy>; hasher?: PasswordHasher } = {},
): Promise<T> {
  return withDatabase(async (database, dir) => {
    const clock = manualClock();
    const auth = createAuthService({ database, dataDir: dir, now: clock.now, ...options });
    const auditEntries = async (filter: { eventType?: string; action?: string } = {}) =>
      (await auth.audit.list({ ...filter, order: 'asc', limit: 1000 })).items;
    return work({ auth, clock, database, dir, auditEntries });
  });
}
