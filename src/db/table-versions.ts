import { type Kysely, sql } from 'kysely';
import type { DB } from './schema.js';

/** The change counters kept in table_versions, and the migration that made each. */
const COUNTERS = { jobs: '0004', credentials: '0005' } as const;
export type ChangeCounter = keyof typeof COUNTERS;

/**
 * The current value of a change counter: equal readings mean nothing it counts has changed in between.
 * @internal exported for bench/service-run.ts, which counts the writes of a run by it
 */
export async function readChangeCounter(db: Kysely<DB>, counter: ChangeCounter): Promise<number> {
  const { rows } = await sql<{ version: number }>`select version from table_versions where name = ${counter}`.execute(db);
  const row = rows[0];
  if (row === undefined) throw new Error(`table_versions has no row for ${counter}; migration ${COUNTERS[counter]} did not run`);
  return row.version;
}

/**
 * `read`, with the calls made while one runs answered together by the next one. Every call gets
 * the answer of a read that began after the call, so a caller sees every change committed before
 * it asked (its own write included), while a burst of callers costs two reads instead of one each.
 * @internal exported for its tests
 */
export function coalescedRead<T>(read: () => Promise<T>): () => Promise<T> {
  let running: Promise<T> | null = null;
  let following: Promise<T> | null = null;
  const start = (): Promise<T> => {
    const started = read();
    running = started;
    const done = (): void => {
      if (running === started) running = null;
    };
    started.then(done, done);
    return started;
  };
  return () => {
    if (running === null) return start();
    // The running read may have begun before a change this caller already saw: it waits for the next.
    following ??= running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        following = null;
        return start();
      });
    return following;
  };
}

/**
 * Reads a change counter for the callers of one repository. Each cached answer (a job list, a known
 * API key) asks for its counter on every request; on PostgreSQL that is a round trip per request,
 * which cost a cluster web instance three quarters of the job list's throughput (bench:scale), so
 * concurrent requests share reads (coalescedRead).
 */
export function changeCounterReader(db: Kysely<DB>, counter: ChangeCounter): () => Promise<number> {
  return coalescedRead(() => readChangeCounter(db, counter));
}
