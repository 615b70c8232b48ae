import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Database } from '../../src/db/database.js';
import { openTestDatabase } from '../support/database.js';

/** Runs `work` with a fresh directory under the system temp dir and removes it afterwards. */
export async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'disk2iso-db-test-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

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
