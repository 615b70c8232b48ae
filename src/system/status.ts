import type { VerificationTaskStatus } from '../archive/verification-task.js';
import type { Config } from '../config/schema.js';
import { errorMessage } from '../errors.js';
import type { JobStatus } from '../jobs/model.js';
import type { HousekeepingRun, RetentionDays } from './housekeeping.js';
import { type MemorySources, createCpuMeter, memoryUsage, storageUsage } from './resources.js';

type ServiceState = 'running' | 'stopped' | 'error';

export interface SystemStatus {
  status: 'healthy' | 'degraded';
  version: string;
  uptime_seconds: number;
  resources: {
    cpu_percent: number;
    process_cpu_percent: number;
    memory_used_bytes: number;
    memory_total_bytes: number;
    memory_source: 'cgroup' | 'host';
    storage_used_bytes: number;
    storage_total_bytes: number;
    storage_free_bytes: number;
  };
  services: Record<'database' | 'queue' | 'workers', ServiceState>;
  drives: { count: number };
  jobs: Record<JobStatus, number>;
  verification_tasks: Record<VerificationTaskStatus, number>;
  housekeeping: HousekeepingStatus;
  /** Why the status is degraded, for people. */
  warnings: string[];
}

/** What the service removes, how often, and what its latest round removed. */
interface HousekeepingStatus {
  interval_seconds: number;
  retention_days: RetentionDays;
  last_run: HousekeepingRun | null;
}

export interface SystemStatusDeps {
  config: Config;
  version: string;
  /** Job counts; a failure means the database is unusable. */
  countJobs(): Promise<Record<JobStatus, number>>;
  /** Touches the queue; a failure means it is unusable. */
  checkQueue(): Promise<unknown>;
  workers(): ServiceState;
  countDrives(): Promise<number>;
  countVerificationTasks(): Promise<Record<VerificationTaskStatus, number>>;
  housekeeping(): HousekeepingStatus;
  startedAt?: Date;
  memorySources?: MemorySources;
}

export interface SystemStatusService {
  status(): Promise<SystemStatus>;
}

const EMPTY_COUNTS: Record<JobStatus, number> = { queued: 0, running: 0, paused: 0, verifying: 0, completed: 0, failed: 0, cancelled: 0 };
const NO_TASKS: Record<VerificationTaskStatus, number> = { queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 };

export function createSystemStatus(deps: SystemStatusDeps): SystemStatusService {
  const startedAt = deps.startedAt ?? new Date();
  const cpu = createCpuMeter();

  return {
    async status() {
      const warnings: string[] = [];
      let database: ServiceState = 'running';
      let jobs = EMPTY_COUNTS;
      try {
        jobs = await deps.countJobs();
      } catch (error) {
        database = 'error';
        warnings.push(`database: ${errorMessage(error)}`);
      }
      let queue: ServiceState = 'running';
      try {
        await deps.checkQueue();
      } catch (error) {
        queue = 'error';
        warnings.push(`queue: ${errorMessage(error)}`);
      }
      const workers = deps.workers();
      if (workers !== 'running') warnings.push('workers are not running: queued jobs will not start');
      let verificationTasks = NO_TASKS;
      if (database === 'running') {
        try {
          verificationTasks = await deps.countVerificationTasks();
        } catch (error) {
          warnings.push(`verification tasks: ${errorMessage(error)}`);
        }
      }
      const housekeeping = deps.housekeeping();
      if (housekeeping.last_run?.error) warnings.push(`housekeeping failed: ${housekeeping.last_run.error}`);

      const outputDir = deps.config.storage.output_dir;
      const [memory, storage, driveCount] = await Promise.all([
        memoryUsage(deps.memorySources),
        storageUsage(outputDir),
        deps.countDrives().catch((error: unknown) => {
          warnings.push(`drives: ${errorMessage(error)}`);
          return 0;
        }),
      ]);
      const usedPercent = storage.totalBytes > 0 ? (storage.usedBytes / (storage.usedBytes + storage.freeBytes)) * 100 : 0;
      if (usedPercent >= deps.config.storage.warn_threshold_percent) {
        warnings.push(`the output file system is ${Math.round(usedPercent)}% full (warning at ${deps.config.storage.warn_threshold_percent}%)`);
      }
      const usage = cpu();
      return {
        status: warnings.length === 0 ? 'healthy' : 'degraded',
        version: deps.version,
        uptime_seconds: Math.floor((Date.now() - startedAt.getTime()) / 1000),
        resources: {
          cpu_percent: usage.systemPercent,
          process_cpu_percent: usage.processPercent,
          memory_used_bytes: memory.usedBytes,
          memory_total_bytes: memory.totalBytes,
          memory_source: memory.source,
          storage_used_bytes: storage.usedBytes,
          storage_total_bytes: storage.totalBytes,
          storage_free_bytes: storage.freeBytes,
        },
        services: { database, queue, workers },
        drives: { count: driveCount },
        jobs,
        verification_tasks: verificationTasks,
        housekeeping,
        warnings,
      };
    },
  };
}
