import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Database } from '../../src/db/database.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { CorruptRowError } from '../../src/db/values.js';
import { withDatabase } from './support.js';

/** What another program (or a broken version) may have left in a job's options column. */
const BROKEN_OPTIONS: Array<{ stored: string; problem: RegExp }> = [
  { stored: '{"read_attempts": 3', problem: /not JSON$/ },
  { stored: '[]', problem: /the value must be object$/ },
  { stored: '{"read_attempts": 101}', problem: /\/read_attempts must be <= 100$/ },
  { stored: '{"read_attempts": "5"}', problem: /\/read_attempts must be integer$/ },
  { stored: '{"checksums": ["crc32"]}', problem: /\/checksums\/0 must be equal to one of the allowed values$/ },
  { stored: '{"disc": {"size_bytes": 0}}', problem: /\/disc\/size_bytes must be >= 1$/ },
  { stored: '{"keep_partial_on_cancel": "no"}', problem: /\/keep_partial_on_cancel must be boolean$/ },
  { stored: '{"verify": true, "bogus": 1}', problem: /\/bogus is not an option$/ },
];

/** Writes the column directly, as sqlite3 on the command line would. */
async function storeOptions(database: Database, jobId: string, text: string): Promise<void> {
  await database.kysely.updateTable('jobs').set({ options: text }).where('id', '=', jobId).execute();
}

async function storedOptions(database: Database, jobId: string): Promise<string> {
  return (await database.kysely.selectFrom('jobs').select('options').where('id', '=', jobId).executeTakeFirstOrThrow()).options;
}

function corrupt(jobId: string, problem: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof CorruptRowError, `a CorruptRowError, not ${String(error)}`);
    assert.ok(error.message.startsWith(`job ${jobId}: the stored options are invalid: `), error.message);
    assert.match(error.message, problem);
    return true;
  };
}

describe('stored job options', () => {
  it('come back as they were stored when they hold job options', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const options = {
        read_attempts: 100,
        verify: false,
        checksums: ['md5' as const, 'sha256' as const],
        disc: {
          label: null,
          volume_id: 'V',
          created_at: null,
          kind: 'data' as const,
          media_type: 'cd' as const,
          file_systems: ['iso9660' as const],
          size_bytes: 2048,
          sector_size: 2048,
        },
      };
      const job = await queue.enqueue({ name: 'good', deviceId: 'sr0', devicePath: '/dev/sr0', outputFile: '/out/good.iso', options });
      assert.deepEqual((await createJobRepository(database).get(job.id))?.options, options);
      assert.deepEqual((await queue.mergeOptions(job.id, { keep_partial_on_cancel: true })).options, { ...options, keep_partial_on_cancel: true });
    });
  });

  it('that are broken are reported, naming the job and the fault, by every read; nothing is changed', async () => {
    await withDatabase(async (database) => {
      const queue = createSqliteQueue(database);
      const jobs = createJobRepository(database);
      for (const { stored, problem } of BROKEN_OPTIONS) {
        const job = await queue.enqueue({ name: 'broken', deviceId: 'sr0', devicePath: '/dev/sr0', outputFile: '/out/broken.iso' });
        await storeOptions(database, job.id, stored);
        const label = `${stored}: `;
        await assert.rejects(jobs.get(job.id), corrupt(job.id, problem), `${label}repository get`);
        await assert.rejects(jobs.list(), corrupt(job.id, problem), `${label}list`);
        await assert.rejects(queue.get(job.id), corrupt(job.id, problem), `${label}queue get`);
        await assert.rejects(queue.mergeOptions(job.id, { keep_partial_on_cancel: true }), corrupt(job.id, problem), `${label}merge`);
        await assert.rejects(queue.claimNext('worker', { leaseMs: 60_000 }), corrupt(job.id, problem), `${label}claim`);
        assert.equal(await storedOptions(database, job.id), stored, `${label}the column is left as it was`);
        const row = await database.kysely.selectFrom('jobs').select(['status', 'lease_owner']).where('id', '=', job.id).executeTakeFirstOrThrow();
        assert.deepEqual(row, { status: 'queued', lease_owner: null }, `${label}the failed claim took nothing`);
        await jobs.delete(job.id);
      }
    });
  });
});
