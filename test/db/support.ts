import type { Database } from '../../src/db/database.js';
import { openTestDatabase } from '../support/database.js';
import { withTempDir } from '../support/temp-dir.js';

export { withTempDir };

/**
 * Runs `work` with a fresh database, closed and removed afterwards: a SQLite file, or a PostgreSQL
 * database in the test runner's PostgreSQL pass (test/support/database.ts).
 */
export async function withDatabase<T>(work: (database: Database, dir: string) => Promise<T>): Promise<T> {
  return withTempDir(async (dir) => {
    const database = await openTestDatabase(dir);
    try {
      return await work(database, dir);
    } finally {
      await database.close();
    }
  });
}

export interface ManualClock {
  now: () => Date;
  advance(ms: number): void;
  set(date: Date): void;
}

export function manualClock(start = new Date('2026-01-15T10:00:00.000Z')): ManualClock {
  let current = start.getTime();
  return {
    now: () => new Date(current),
    advance: (ms) => {
      current += ms;
    },
    set: (date) => {
      current = date.getTime();
    },
  };
}
