import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Runs `work` with a fresh directory under the system temp dir and removes it afterwards. Its own
 * module, apart from the engine switch: a SQLite-only test (a migration's data path) uses it
 * without being run again in the PostgreSQL pass.
 */
export async function withTempDir<T>(work: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'disk2iso-db-test-'));
  try {
    return await work(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
