import { CompiledQuery } from 'kysely';
import type { Config } from '../config/schema.js';
import type { Database } from '../db/database.js';
import type { ErrorCode } from '../error-codes.js';
import { DomainError, UnavailableError, errorMessage } from '../errors.js';
import type { OutputProbe } from './output-probe.js';

/**
 * Readiness: can the service do its work now? Beside the liveness check (GET /api/v1/health), which
 * only says the process and its database answer. Each check says what failed, with a code.
 */
export const READINESS_CHECKS = ['database', 'output_dir', 'job_runner'] as const;
type ReadinessCheckName = (typeof READINESS_CHECKS)[number];

export interface CheckResult {
  ok: boolean;
  /** Why it failed; null when ok. */
  code: ErrorCode | null;
  /** For people running the service: may name paths and figures, so it is not sent to anonymous callers. */
  message: string;
}

export interface Readiness {
  ready: boolean;
  checks: Record<ReadinessCheckName, CheckResult>;
}

export interface ReadinessDeps {
  config: Config;
  /** Writes to the database once; throws when it cannot. */
  writeDatabase(): Promise<void>;
  output: OutputProbe;
  /** Whether a job runner looks for work; throws a DomainError saying why not. */
  checkRunner(): void;
}

/** How long the PostgreSQL write probe waits for a lock: the embedded database's busy timeout. */
const PROBE_LOCK_TIMEOUT_MS = 5000;

/**
 * A real write that changes nothing, which a database that cannot take writes now refuses. On
 * SQLite the header page's user_version, set to what it is: a read-only or failing file system, or
 * a lock another process holds beyond the busy timeout, refuses it; nothing reads user_version (the
 * migrations keep their own table). On PostgreSQL a row of table_versions updated to itself: a
 * read-only server (a standby, default_transaction_read_only), a lost connection or a lock held
 * beyond the timeout refuses it, and no trigger fires (the change counters' triggers are on the counted tables, not on this one).
 */
export async function probeDatabaseWrite(database: Database): Promise<void> {
  if (database.dialect === 'postgres') {
    await database.transaction(async (tx) => {
      // As SQLite's busy timeout bounds its wait: a row lock another session holds longer fails the probe instead of hanging it.
      await tx.run({ compile: () => CompiledQuery.raw(`set local lock_timeout = ${PROBE_LOCK_TIMEOUT_MS}`) });
      await tx.run({ compile: () => CompiledQuery.raw("update table_versions set version = version where name = 'jobs'") });
    });
    return;
  }
  await database.transaction(async (tx) => {
    const row = await tx.first<{ user_version: number }>({ compile: () => CompiledQuery.raw('PRAGMA user_version') });
    const version = row?.user_version ?? 0;
    if (!Number.isSafeInteger(version)) throw new UnavailableError('database_unavailable', `the database header holds ${String(version)}`);
    await tx.run({ compile: () => CompiledQuery.raw(`PRAGMA user_version = ${version}`) });
  });
}

/**
 * How long the claim loop may go without looking for work (it looks every second) before it counts as stuck.
 * @internal exported for its tests
 */
export const RUNNER_STALL_MS = 30_000;

/** The job runner check of a service: `lastPoll` from JobRunner.lastPoll(). */
export function runnerCheck(lastPoll: () => Date | null, now: () => number = Date.now): () => void {
  return () => {
    const last = lastPoll();
    if (last === null) throw new UnavailableError('job_runner_stopped', 'the job runner is not running: queued jobs do not start');
    const idleSeconds = Math.round((now() - last.getTime()) / 1000);
    if (idleSeconds * 1000 > RUNNER_STALL_MS) {
      throw new UnavailableError('job_runner_stopped', `the job runner last looked for work ${idleSeconds} s ago: it is stuck, queued jobs do not start`);
    }
  };
}

/** Runs one check: its answer is the message when it passes. */
async function check(work: () => Promise<string>, fallback: ErrorCode): Promise<CheckResult> {
  try {
    return { ok: true, code: null, message: await work() };
  } catch (error) {
    return { ok: false, code: error instanceof DomainError ? error.code : fallback, message: errorMessage(error) };
  }
}

export function createReadiness(deps: ReadinessDeps): () => Promise<Readiness> {
  const { config, output } = deps;

  async function checkOutput(): Promise<string> {
    await output.checkWritable().catch((error: unknown) => {
      if (error instanceof DomainError) throw error;
      throw new UnavailableError('output_unwritable', `cannot write to the output directory ${config.storage.output_dir}: ${errorMessage(error)}`);
    });
    const usage = await output.usage();
    const stop = config.storage.stop_threshold_percent;
    // As the engine decides it: above the threshold, imaging pauses.
    if (usage.usedPercent > stop) {
      throw new UnavailableError(
        'storage_threshold',
        `the output file system is ${usage.usedPercent.toFixed(1)}% full, above the stop threshold of ${stop}%: imaging pauses until space is freed`,
      );
    }
    return `writable, ${usage.usedPercent.toFixed(1)}% full (imaging stops above ${stop}%)`;
  }

  return async () => {
    const [database, outputDir, jobRunner] = await Promise.all([
      check(async () => {
        await deps.writeDatabase();
        return 'writable';
      }, 'database_unavailable'),
      check(checkOutput, 'output_unwritable'),
      check(async () => {
        deps.checkRunner();
        return 'looking for work';
      }, 'job_runner_stopped'),
    ]);
    const checks = { database, output_dir: outputDir, job_runner: jobRunner };
    return { ready: Object.values(checks).every((result) => result.ok), checks };
  };
}
