import { ENDED_API_KEY_RETENTION_DAYS } from '../auth/api-keys.js';
import type { AuthService } from '../auth/service.js';
import { type Clock, systemClock } from '../clock.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';

/** Rows one housekeeping round deleted, by kind. */
interface HousekeepingRemoved {
  sessions: number;
  /** Login failures past the longest lockout window, and ended lockouts. */
  login_failures: number;
  /** Keys revoked or expired more than ENDED_API_KEY_RETENTION_DAYS ago. */
  api_keys: number;
  /** Lines of jobs' own logs older than storage.log_retention_days. */
  job_logs: number;
  /** Lines of the application log older than storage.log_retention_days. */
  logs: number;
  /** Audit entries older than security.audit_retention_days. */
  audit_entries: number;
  /** Verification tasks that ended more than storage.log_retention_days ago (their outcome stays in the history). */
  verification_tasks: number;
}

export interface HousekeepingRun {
  at: string;
  removed: HousekeepingRemoved;
  /** Why the round stopped early; what it removed before is counted. */
  error: string | null;
}

/** The retention rules a round applies, in days, as set now. */
export interface RetentionDays {
  logs: number;
  audit: number;
  ended_api_keys: number;
}

export interface HousekeepingDeps {
  /** Shared and updated in place: a changed retention applies from the next round on. */
  config: Config;
  auth: Pick<AuthService, 'prune' | 'audit'>;
  /** Each deletes what is older than `before` and returns how many rows went. */
  pruneJobLogs(before: Date): Promise<number>;
  pruneLogs(before: Date): Promise<number>;
  /** Only finished tasks, by when they ended. */
  pruneVerificationTasks(before: Date): Promise<number>;
  now?: Clock;
}

export interface Housekeeping {
  /** One round: applies every retention rule. Never throws; a failure is the run's error. */
  run(): Promise<HousekeepingRun>;
  /** The latest round, or null before the first. */
  last(): HousekeepingRun | null;
  retentionDays(): RetentionDays;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Nothing the service stores grows forever: ended sessions and stale login failures, API keys long
 * revoked or expired, job and application log lines and ended verification tasks past
 * storage.log_retention_days, audit entries past security.audit_retention_days. The service runs a
 * round at start and every minute; the latest is shown by GET /api/v1/system/status.
 */
export function createHousekeeping(deps: HousekeepingDeps): Housekeeping {
  const { config } = deps;
  const now = deps.now ?? systemClock;
  let latest: HousekeepingRun | null = null;

  return {
    async run() {
      const at = now();
      const logsBefore = new Date(at.getTime() - config.storage.log_retention_days * DAY_MS);
      const removed: HousekeepingRemoved = { sessions: 0, login_failures: 0, api_keys: 0, job_logs: 0, logs: 0, audit_entries: 0, verification_tasks: 0 };
      let error: string | null = null;
      try {
        const auth = await deps.auth.prune();
        removed.sessions = auth.sessions;
        removed.login_failures = auth.loginFailures;
        removed.api_keys = auth.apiKeys;
        removed.audit_entries = await deps.auth.audit.applyRetention(config.security.audit_retention_days);
        removed.job_logs = await deps.pruneJobLogs(logsBefore);
        removed.logs = await deps.pruneLogs(logsBefore);
        removed.verification_tasks = await deps.pruneVerificationTasks(logsBefore);
      } catch (failure) {
        error = errorMessage(failure);
      }
      latest = { at: at.toISOString(), removed, error };
      return latest;
    },
    last: () => latest,
    retentionDays: () => ({
      logs: config.storage.log_retention_days,
      audit: config.security.audit_retention_days,
      ended_api_keys: ENDED_API_KEY_RETENTION_DAYS,
    }),
  };
}
