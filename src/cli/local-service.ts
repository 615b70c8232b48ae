import { type AuditTrail, createAuditTrail } from '../audit/trail.js';
import type { Config } from '../config/schema.js';
import { type ArchiveRepository, createArchiveRepository } from '../db/archive-repository.js';
import { createAuditRepository } from '../db/audit-repository.js';
import type { Database } from '../db/database.js';
import { type JobRepository, createJobRepository } from '../db/job-repository.js';
import { type LogRepository, createLogRepository } from '../db/log-repository.js';
import { queueNodeOf } from '../db/open.js';
import { createSettingsRepository } from '../db/settings-repository.js';
import { createSqliteQueue } from '../db/sqlite-queue.js';
import type { Drive } from '../drives/types.js';
import { ConflictError } from '../errors.js';
import { createEventBus } from '../events/bus.js';
import { runImaging } from '../imaging/engine.js';
import type { JobEventBus, JobEvents } from '../jobs/events.js';
import { type Intake, createIntake } from '../jobs/intake.js';
import { currentLeaseHolder, leaseHolderGone } from '../jobs/lease-holder.js';
import type { LeaseHolder } from '../jobs/model.js';
import { type JobQueue, newWorkerId } from '../jobs/queue.js';
import { type JobRunner, createJobRunner } from '../jobs/runner.js';
import { activeJobsByDevice } from '../system/devices.js';
import { type SettingsService, applyStoredSettings, createSettingsService } from '../system/settings.js';
import type { CliContext } from './context.js';
import { withDatabase } from './local-auth.js';

/** The service's jobs, archive and settings as a CLI command works with them: the same database, the same rules. */
export interface LocalService {
  /** The configuration with the settings stored through the web interface applied, as the service sees it. */
  config: Config;
  database: Database;
  logs: LogRepository;
  settings: SettingsService;
  audit: AuditTrail;
  jobs: JobRepository;
  archives: ArchiveRepository;
  queue: JobQueue;
  events: JobEventBus;
  intake: Intake;
  workerId: string;
  holder: LeaseHolder;
  leaseMs: number;
  /** A running service that takes jobs from this database, or null. */
  runningService(): Promise<{ id: string; holder: LeaseHolder } | null>;
  /** A runner for jobs this command holds; it never claims others. */
  runner(): JobRunner;
  /** ConflictError `device_busy` while a job (of the service or another command) reads from the drive. */
  assertDriveFree(drive: Drive): Promise<void>;
}

export async function withLocalService<T>(ctx: CliContext, work: (local: LocalService) => Promise<T>): Promise<T> {
  const { config } = ctx;
  return withDatabase(config, async (database) => {
    const settingsRepository = createSettingsRepository(database);
    const stored = await settingsRepository.list();
    await applyStoredSettings(config, Object.fromEntries(stored.map((setting) => [setting.key, setting.value])), (key, reason) =>
      ctx.log.warn({ key }, `stored setting ${key} ignored: ${reason}`),
    );
    const jobs = createJobRepository(database);
    const archives = createArchiveRepository(database);
    const queue = createSqliteQueue(database, { nodeId: queueNodeOf(config, database) });
    const events = createEventBus<JobEvents>((error) => ctx.log.error({ err: error }, 'an event listener failed'));
    const workerId = newWorkerId();
    const holder = await currentLeaseHolder();
    const leaseMs = config.jobs.lease_seconds * 1000;
    const intake = createIntake({
      config,
      drives: ctx.drives,
      media: (id) => ctx.drives.probe(id),
      reservedOutputs: () => jobs.unfinishedOutputFiles(),
    });
    return work({
      config,
      database,
      logs: createLogRepository(database),
      settings: createSettingsService({ config, settings: settingsRepository }),
      audit: createAuditTrail({ repository: createAuditRepository(database) }),
      jobs,
      archives,
      queue,
      events,
      intake,
      workerId,
      holder,
      leaseMs,
      async runningService() {
        // A service heartbeats a third of a lease apart: one lease without a heartbeat means it is gone.
        // Its process is checked by pid on this host only (leaseHolderGone); a service on another host
        // counts as running while it heartbeats, which is right while one instance runs per database
        // (README, "When to switch to PostgreSQL").
        const [service] = await queue.liveWorkers({ staleMs: leaseMs, holderGone: leaseHolderGone });
        return service ?? null;
      },
      async assertDriveFree(drive) {
        const running = (await activeJobsByDevice(jobs)).get(drive.id);
        if (running) {
          throw new ConflictError('device_busy', `${drive.id} is busy with job ${running.id} (${running.name}); pause or cancel it first`, {
            device: drive.id,
            job_id: running.id,
          });
        }
      },
      runner: () =>
        createJobRunner({
          config,
          queue,
          jobs,
          archives,
          drives: ctx.drives,
          events,
          log: ctx.log,
          runImaging,
          workerId,
          leaseHolder: holder,
          holderGone: leaseHolderGone,
          // The person running the command chose the file and may write it (checked by cliOutput).
          outputAllowed: async () => true,
        }),
    });
  });
}
