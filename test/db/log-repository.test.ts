import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createLogRepository } from '../../src/db/log-repository.js';
import { ValidationError } from '../../src/errors.js';
import type { LogLevel } from '../../src/log.js';
import { manualClock, withDatabase } from './support.js';

describe('log repository', () => {
  it('appends lines with the clock or a given time and returns them with their details', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const logs = createLogRepository(database, { now: clock.now });
      const stamped = await logs.append({ level: 'info', source: 'http', message: 'listening', details: { port: 8080, host: '127.0.0.1' } });
      assert.deepEqual(stamped, {
        id: stamped.id,
        at: '2026-01-15T10:00:00.000Z',
        level: 'info',
        source: 'http',
        message: 'listening',
        jobId: null,
        details: { port: 8080, host: '127.0.0.1' },
      });
      const given = await logs.append({ level: 'error', source: 'jobs', message: 'read error', jobId: 'job_1', at: new Date('2026-01-01T00:00:00Z') });
      assert.equal(given.at, '2026-01-01T00:00:00.000Z');
      assert.equal(given.jobId, 'job_1');
      assert.equal(given.details, null);
      assert.ok(given.id > stamped.id);
    });
  });

  it('filters by lowest level, time, job and id, newest first by default, with totals', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const logs = createLogRepository(database, { now: clock.now });
      const levels: LogLevel[] = ['debug', 'info', 'warning', 'error', 'info', 'debug', 'error'];
      const ids: number[] = [];
      for (const [index, level] of levels.entries()) {
        ids.push((await logs.append({ level, source: 'test', message: `line ${index}`, jobId: index % 2 === 0 ? 'job_even' : null })).id);
        clock.advance(60_000);
      }
      const messages = async (filter: Parameters<typeof logs.list>[0]) => (await logs.list(filter)).items.map((line) => line.message);

      assert.deepEqual(await messages({}), ['line 6', 'line 5', 'line 4', 'line 3', 'line 2', 'line 1', 'line 0']);
      assert.deepEqual(await messages({ order: 'asc', limit: 2 }), ['line 0', 'line 1']);
      assert.deepEqual(await messages({ minLevel: 'error' }), ['line 6', 'line 3']);
      assert.deepEqual(await messages({ minLevel: 'warning' }), ['line 6', 'line 3', 'line 2']);
      assert.deepEqual(await messages({ minLevel: 'info' }), ['line 6', 'line 4', 'line 3', 'line 2', 'line 1']);
      assert.deepEqual(await messages({ since: new Date('2026-01-15T10:04:00Z') }), ['line 6', 'line 5', 'line 4']);
      assert.deepEqual(await messages({ jobId: 'job_even', minLevel: 'info' }), ['line 6', 'line 4', 'line 2']);
      assert.deepEqual(await messages({ afterId: ids[4], order: 'asc' }), ['line 5', 'line 6']);

      const paged = await logs.list({ minLevel: 'info', limit: 2, offset: 1 });
      assert.deepEqual(
        paged.items.map((line) => line.message),
        ['line 4', 'line 3'],
      );
      assert.equal(paged.total, 5);
      await assert.rejects(logs.list({ limit: -5 }), ValidationError);
    });
  });

  it('prunes lines older than a cutoff', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const logs = createLogRepository(database, { now: clock.now });
      await logs.append({ level: 'info', source: 'test', message: 'old' });
      clock.advance(86_400_000);
      await logs.append({ level: 'info', source: 'test', message: 'new' });
      assert.equal(await logs.prune(new Date('2026-01-16T00:00:00Z')), 1);
      assert.deepEqual(
        (await logs.list()).items.map((line) => line.message),
        ['new'],
      );
      assert.equal(await logs.prune(new Date('2026-01-16T00:00:00Z')), 0);
    });
  });
});
