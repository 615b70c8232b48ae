import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KyselyPlugin } from 'kysely';
import type { Database } from '../../src/db/database.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import type { JobQueue } from '../../src/jobs/queue.js';
import { BOUND, type JobsHarness, engineRunningUntilStopped, firstRun, stopAsked, waitFor, withJobs } from './support.js';

/**
 * A run whose lease can no longer be renewed (the database out of reach) stops reading before the
 * lease runs out, and records its pause once the database answers again, or leaves the job to the
 * recovery that took it meanwhile. The database here fails every statement while it is "away",
 * the way a pool fails them when the server cannot be reached; on either engine.
 */

interface Outage {
  away: boolean;
  /** Statements refused while away. */
  refused: number;
  /** The database itself, which the outage does not touch: the view of another node. */
  direct: Database | null;
  wrap(database: Database): Database;
}

function outage(): Outage {
  const state: Outage = {
    away: false,
    refused: 0,
    direct: null,
    wrap(database) {
      state.direct = database;
      const refuse = (): Error => {
        state.refused += 1;
        return new Error('connect ECONNREFUSED 10.231.0.1:5432');
      };
      const plugin: KyselyPlugin = {
        transformQuery(args) {
          if (state.away) throw refuse();
          return args.node;
        },
        transformResult: async (args) => args.result,
      };
      return {
        dialect: database.dialect,
        location: database.location,
        kysely: database.kysely.withPlugin(plugin),
        transaction: (work) => (state.away ? Promise.reject(refuse()) : database.transaction(work)),
        appliedMigrations: () => database.appliedMigrations(),
        close: () => database.close(),
      };
    },
  };
  return state;
}

/** The queue of another node on the same database, which the outage does not reach. */
function otherNodesQueue(state: Outage): JobQueue {
  assert.ok(state.direct, 'the harness opened the database');
  return createSqliteQueue(state.direct, { nodeId: 'other-node' });
}

async function createJob(harness: JobsHarness, name: string): Promise<string> {
  return (await harness.service.create({ device: 'sr0', name }, 'tester')).id;
}

async function logText(harness: JobsHarness, jobId: string): Promise<string> {
  return (await harness.service.logs(jobId)).map((line) => line.message).join('\n');
}

describe('job runner: the database out of reach', () => {
  it('pauses the run before its lease runs out, records the pause once the database is back, and continues the job', BOUND, async () => {
    const state = outage();
    await withJobs({ env: { DISK2ISO_JOBS_LEASE_SECONDS: '9' }, database: state.wrap }, async (harness) => {
      const id = await createJob(harness, 'cut_off');
      const engine = engineRunningUntilStopped(40);
      const runner = await harness.startRunner(engine);
      const request = await firstRun(engine);
      await waitFor('the progress to be recorded', async () => (await harness.job(id)).progress === 40);

      state.away = true;
      assert.equal(await stopAsked(request), 'pause', 'the engine is asked to pause (map saved), not to cancel');
      const atStop = await otherNodesQueue(state).get(id);
      assert.ok(atStop?.leaseExpiresAt, 'the job still has its lease');
      assert.ok(Date.parse(atStop.leaseExpiresAt) > Date.now(), `stopped before the lease ran out (${atStop.leaseExpiresAt})`);

      // The run keeps trying to record its end; nothing is recorded meanwhile, and nothing fails.
      const refusedAtStop = state.refused;
      await waitFor('a second attempt to record the pause', () => state.refused >= refusedAtStop + 2);
      assert.deepEqual(runner.active(), [id], 'the run has not given up');
      const meanwhile = await otherNodesQueue(state).get(id);
      assert.equal(meanwhile?.status, 'running');
      assert.equal(harness.finished.length, 0, 'no end recorded yet');

      state.away = false;
      const second = await waitFor('the job to run again', () => engine.requests[1]);
      assert.equal(second.outputPath, request.outputPath, 'the same image and map: the engine continues from the map');
      assert.deepEqual(
        harness.finished.map((job) => [job.id, job.status]),
        [[id, 'queued']],
        'recorded as a pause and put back in the queue, not failed',
      );
      const job = await harness.job(id);
      assert.equal(job.status, 'running');
      assert.equal(job.attempts, 2);
      assert.equal(job.errorCode, null);
      const log = await logText(harness, id);
      assert.match(log, /paused: the job lease could not be renewed; it continues from the rescue map/);
      assert.match(log, /continuing from the rescue map/);
    });
  });

  it('leaves a job that was recovered while the run could not reach the database, and takes it up again on its node', BOUND, async () => {
    const state = outage();
    await withJobs({ env: { DISK2ISO_JOBS_LEASE_SECONDS: '5' }, database: state.wrap }, async (harness) => {
      const id = await createJob(harness, 'recovered');
      const engine = engineRunningUntilStopped(40);
      const runner = await harness.startRunner(engine);
      const request = await firstRun(engine);

      state.away = true;
      assert.equal(await stopAsked(request), 'pause');
      // Another node, which still reaches the database, recovers the job once its lease has run out.
      const other = otherNodesQueue(state);
      const recovered = await waitFor('the lease to run out and another node to recover the job', async () => {
        const released = await other.recoverExpired();
        return released.length > 0 ? released : null;
      });
      assert.deepEqual(
        recovered.map((job) => [job.id, job.status, job.leaseOwner]),
        [[id, 'queued', null]],
      );
      assert.deepEqual(runner.active(), [id], 'the run still tries to record its end');

      state.away = false;
      const second = await waitFor('the job to run again on its node', () => engine.requests[1]);
      assert.equal(second.outputPath, request.outputPath);
      assert.deepEqual(harness.finished, [], "no end recorded over the recovery's");
      const job = await harness.job(id);
      assert.equal(job.status, 'running');
      assert.equal(job.attempts, 2);
      assert.equal(job.errorCode, null);
      assert.doesNotMatch(await logText(harness, id), /no longer holds|internal error/);
    });
  });
});
