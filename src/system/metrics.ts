import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Config } from '../config/schema.js';
import type { ArchiveRepository } from '../db/archive-repository.js';
import type { DriveStates, MediaState } from '../drives/state.js';
import type { ImagingPhase } from '../imaging/types.js';
import type { JobEventBus } from '../jobs/events.js';
import { JOB_STATUSES, type JobRecord, type JobStatus } from '../jobs/model.js';
import type { OutputProbe } from './output-probe.js';

/**
 * The service's metrics in the Prometheus text format (GET /metrics, `disk2iso metrics`). Names
 * follow the Prometheus conventions (base units, `_total` for counters, `_ratio` for fractions);
 * `promtool check metrics` finds nothing to lint. Labels take bounded values only: statuses, drive
 * ids, route patterns (never URLs).
 *
 * - Gauges are computed at each scrape from the database, the drive-state cache (never a drive: see
 *   src/drives/state.ts) and the output file system (bounded by OutputProbe).
 * - Counters follow the job events from the moment the service started; Prometheus' rate() and
 *   increase() handle their restart at zero.
 * - Each service has its own registry; the process metrics (CPU, memory, event loop, GC) belong to
 *   the process and are collected once per process.
 */

export interface MetricsSources {
  config: Config;
  countJobs(): Promise<Record<JobStatus, number>>;
  /** The jobs reading from or verifying on a drive now (running or verifying). */
  activeJobs(): Promise<JobRecord[]>;
  output: OutputProbe;
}

/** The phases in which a job reads its drive, and `bytesDone` counts rescued bytes (the map's '+'). */
const RESCUE_PHASES: ReadonlySet<ImagingPhase> = new Set(['copying', 'trimming', 'scraping', 'retrying']);
/** Phases that come only after a rescue that ended: every byte is then rescued or unreadable. */
const AFTER_RESCUE_PHASES: ReadonlySet<ImagingPhase> = new Set(['hashing', 'finalizing', 'verifying']);
/** What a drive's medium is known as: its job's disc, or the drive-state cache's answer. */
const MEDIA_STATES: ReadonlyArray<'job' | MediaState> = ['job', 'probed', 'failed', 'probing', 'not_responding'];
const FINISHED_STATUSES: ReadonlySet<JobStatus> = new Set(['completed', 'failed', 'cancelled', 'paused']);
const VERIFICATION_TRIGGERS = ['after_imaging', 'requested'] as const;

/** The gauges both the service and `disk2iso metrics` without a service compute: database and output file system. */
function stateGauges(registry: Registry, sources: MetricsSources) {
  const registers = [registry];
  const jobs = new Gauge({ name: 'disk2iso_jobs', help: 'Jobs by status', labelNames: ['status'], registers });
  const queueLength = new Gauge({ name: 'disk2iso_queue_length', help: 'Jobs waiting in the queue for a drive (status queued)', registers });
  const readRate = new Gauge({
    name: 'disk2iso_drive_read_rate_bytes_per_second',
    help: 'How fast each drive is read now by its imaging job (0 while it hashes, verifies or idles)',
    labelNames: ['drive'],
    registers,
  });
  const output = {
    size: new Gauge({ name: 'disk2iso_output_filesystem_size_bytes', help: 'Size of the file system holding the output directory', registers }),
    used: new Gauge({ name: 'disk2iso_output_filesystem_used_bytes', help: 'Bytes in use on the output file system', registers }),
    free: new Gauge({
      name: 'disk2iso_output_filesystem_free_bytes',
      help: 'Bytes on the output file system that the service can still write',
      registers,
    }),
    usedRatio: new Gauge({
      name: 'disk2iso_output_filesystem_used_ratio',
      help: 'Used / (used + free) of the output file system, as imaging compares it with the stop threshold',
      registers,
    }),
  };
  const warnThreshold = new Gauge({
    name: 'disk2iso_output_filesystem_warn_threshold_ratio',
    help: 'storage.warn_threshold_percent as a ratio: the status turns degraded above it',
    registers,
  });
  const stopThreshold = new Gauge({
    name: 'disk2iso_output_filesystem_stop_threshold_ratio',
    help: 'storage.stop_threshold_percent as a ratio: imaging pauses above it',
    registers,
  });

  return {
    /** Sets every gauge from the sources; `driveIds` are the drives to show even when idle. */
    async refresh(driveIds: readonly string[]): Promise<JobRecord[]> {
      const [counts, active, usage] = await Promise.all([
        sources.countJobs(),
        sources.activeJobs(),
        // A hung or failing output file system leaves its gauges out of this scrape instead of failing it.
        sources.output.usage().catch(() => null),
      ]);
      jobs.reset();
      for (const status of JOB_STATUSES) jobs.set({ status }, counts[status] ?? 0);
      queueLength.set(counts.queued ?? 0);
      readRate.reset();
      const reading = new Map(active.map((job) => [job.deviceId, job]));
      for (const drive of new Set([...driveIds, ...reading.keys()])) {
        const job = reading.get(drive);
        const readsDrive = job !== undefined && job.status === 'running' && job.phase !== null && RESCUE_PHASES.has(job.phase);
        readRate.set({ drive }, readsDrive ? (job.speedBps ?? 0) : 0);
      }
      for (const gauge of Object.values(output)) gauge.reset();
      if (usage !== null) {
        output.size.set(usage.totalBytes);
        output.used.set(usage.usedBytes);
        output.free.set(usage.freeBytes);
        output.usedRatio.set(usage.usedPercent / 100);
      }
      warnThreshold.set(sources.config.storage.warn_threshold_percent / 100);
      stopThreshold.set(sources.config.storage.stop_threshold_percent / 100);
      return active;
    },
  };
}

/** The metrics of a data directory, computed without a service (`disk2iso metrics` when none runs). */
export async function renderDataDirMetrics(sources: MetricsSources): Promise<string> {
  const registry = new Registry();
  await stateGauges(registry, sources).refresh([]);
  return registry.metrics();
}

let processRegistry: Registry | null = null;
const MISNAMED_DEFAULT_METRICS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** CPU, memory, file descriptors, event loop and GC of this process; one set per process, however many services it runs. */
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
    // Gauges named like counters (promtool flags them); each is the sum of its gauge by type, kept.
    for (const name of MISNAMED_DEFAULT_METRICS) processRegistry.removeSingleMetric(name);
  }
  return processRegistry;
}

/** An answered request, as the HTTP layer reports it (src/http/app.ts, AnsweredRequest). */
interface Answered {
  method: string;
  route: string | null;
  statusCode: number;
  seconds: number;
}

export interface ServiceMetricsDeps extends MetricsSources {
  version: string;
  events: JobEventBus;
  drives: Pick<DriveStates, 'list' | 'peek'>;
}

export interface ServiceMetrics {
  readonly contentType: string;
  /** The exposition text: the service's metrics, then its process's. */
  render(): Promise<string>;
  observeResponse(answered: Answered): void;
  /** The catalogue with every verification it records counted (after imaging, or asked for). */
  countVerifications(repository: ArchiveRepository): ArchiveRepository;
  /** Stops following the job events. */
  close(): void;
}

interface RunSoFar {
  bytesDone: number;
  badBytes: number;
  errorCount: number;
  sizeBytes: number | null;
}

export function createServiceMetrics(deps: ServiceMetricsDeps): ServiceMetrics {
  const registry = new Registry();
  const registers = [registry];
  const state = stateGauges(registry, deps);

  new Gauge({ name: 'disk2iso_build_info', help: 'The running version (always 1)', labelNames: ['version'], registers }).set({ version: deps.version }, 1);
  const driveBusy = new Gauge({
    name: 'disk2iso_drive_busy',
    help: 'Whether a job reads from or verifies on the drive now (1) or not (0)',
    labelNames: ['drive'],
    registers,
  });
  const mediaPresent = new Gauge({
    name: 'disk2iso_drive_media_present',
    help: 'Whether the drive holds a medium as far as is known without reading it (its job, or the last probe)',
    labelNames: ['drive'],
    registers,
  });
  const mediaState = new Gauge({
    name: 'disk2iso_drive_media_state',
    help: 'How current what is known of the medium is: job (busy), probed, failed, probing or not_responding; 1 for the state the drive is in',
    labelNames: ['drive', 'state'],
    registers,
  });
  const imagedBytes = new Counter({
    name: 'disk2iso_imaged_bytes_total',
    help: 'Bytes read from each drive into images (rescued), since the service started',
    labelNames: ['drive'],
    registers,
  });
  const unreadableBytes = new Counter({
    name: 'disk2iso_unreadable_bytes_found_total',
    help: 'Bytes in bad sectors found on each drive, since the service started (a later retry that reads them does not subtract)',
    labelNames: ['drive'],
    registers,
  });
  const readErrors = new Counter({
    name: 'disk2iso_read_errors_total',
    help: 'Failed reads of each drive, since the service started',
    labelNames: ['drive'],
    registers,
  });
  const finishedJobs = new Counter({
    name: 'disk2iso_jobs_finished_total',
    help: 'Job runs that ended, by how: completed, failed, cancelled or paused (a pause for a service stop is not counted)',
    labelNames: ['status'],
    registers,
  });
  const verifications = new Counter({
    name: 'disk2iso_verifications_total',
    help: 'Verifications of finished images: after_imaging (imaging.verify) or requested (API, pages)',
    labelNames: ['trigger'],
    registers,
  });
  const verificationFailures = new Counter({
    name: 'disk2iso_verification_failures_total',
    help: 'Verifications that found an image not matching its checksums',
    labelNames: ['trigger'],
    registers,
  });
  const requestDuration = new Histogram({
    name: 'disk2iso_http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern and status code, and how long they took (live streams: their whole life)',
    labelNames: ['method', 'route', 'code'],
    registers,
  });
  for (const status of FINISHED_STATUSES) finishedJobs.inc({ status }, 0);
  for (const trigger of VERIFICATION_TRIGGERS) {
    verifications.inc({ trigger }, 0);
    verificationFailures.inc({ trigger }, 0);
  }

  /** Where each job's current run stood at its last event, while it reads its drive. */
  const runs = new Map<string, RunSoFar>();

  const count = (drive: string, before: RunSoFar, now: Pick<RunSoFar, 'bytesDone' | 'badBytes' | 'errorCount'>): void => {
    if (now.bytesDone > before.bytesDone) imagedBytes.inc({ drive }, now.bytesDone - before.bytesDone);
    if (now.badBytes > before.badBytes) unreadableBytes.inc({ drive }, now.badBytes - before.badBytes);
    if (now.errorCount > before.errorCount) readErrors.inc({ drive }, now.errorCount - before.errorCount);
  };

  /**
   * Counts what a job read since its last event. A run's first event ('preparing') states what
   * earlier runs rescued (the map) and starts the run's counts from there; a job's stored figures
   * (the claim) may be from a phase that counts something else, so they count nothing.
   */
  const follow = (job: JobRecord): void => {
    const before = runs.get(job.id);
    const now: RunSoFar = {
      bytesDone: job.bytesDone,
      badBytes: job.badBytes,
      errorCount: job.errorCount,
      sizeBytes: job.sizeBytes ?? before?.sizeBytes ?? null,
    };
    if (job.phase === 'preparing') {
      runs.set(job.id, now);
      return;
    }
    if (job.status === 'running' && job.phase !== null && RESCUE_PHASES.has(job.phase)) {
      if (before !== undefined) count(job.deviceId, before, now);
      runs.set(job.id, now);
      return;
    }
    // The rescue ended: the bytes read after its last event are everything not unreadable.
    if (before !== undefined && job.phase !== null && AFTER_RESCUE_PHASES.has(job.phase) && now.sizeBytes !== null) {
      count(job.deviceId, before, { bytesDone: now.sizeBytes - job.badBytes, badBytes: job.badBytes, errorCount: job.errorCount });
    }
    runs.delete(job.id);
  };

  const unsubscribe = [
    deps.events.on('job.updated', ({ job }) => follow(job)),
    deps.events.on('job.finished', ({ job }) => {
      runs.delete(job.id);
      if (FINISHED_STATUSES.has(job.status)) finishedJobs.inc({ status: job.status });
    }),
    deps.events.on('job.removed', ({ jobId }) => runs.delete(jobId)),
  ];

  return {
    contentType: registry.contentType,

    async render() {
      const drives = deps.drives.list();
      const active = await state.refresh(drives.map((drive) => drive.id));
      const busy = new Map(active.map((job) => [job.deviceId, job]));
      driveBusy.reset();
      mediaPresent.reset();
      mediaState.reset();
      for (const { id: drive } of drives) {
        imagedBytes.inc({ drive }, 0);
        unreadableBytes.inc({ drive }, 0);
        readErrors.inc({ drive }, 0);
        const job = busy.get(drive);
        const known = job === undefined ? deps.drives.peek(drive) : null;
        const current = known === null ? 'job' : known.state;
        driveBusy.set({ drive }, job === undefined ? 0 : 1);
        mediaPresent.set({ drive }, known === null || known.media?.present === true ? 1 : 0);
        for (const candidate of MEDIA_STATES) mediaState.set({ drive, state: candidate }, candidate === current ? 1 : 0);
      }
      return `${await registry.metrics()}\n${await processMetrics().metrics()}`;
    },

    observeResponse({ method, route, statusCode, seconds }) {
      requestDuration.observe({ method, route: route ?? 'unmatched', code: String(statusCode) }, seconds);
    },

    countVerifications(repository) {
      const count = (input: { ok: boolean; results: { source?: unknown } }): void => {
        const trigger = input.results.source === 'after imaging' ? 'after_imaging' : 'requested';
        verifications.inc({ trigger });
        if (!input.ok) verificationFailures.inc({ trigger });
      };
      return {
        ...repository,
        async recordVerification(archiveId, input) {
          const recorded = await repository.recordVerification(archiveId, input);
          count(input);
          return recorded;
        },
        // The verification worker records a task's result inside the transaction that ends the task.
        async recordVerificationWithin(tx, archiveId, input) {
          const recorded = await repository.recordVerificationWithin(tx, archiveId, input);
          tx.afterCommit(() => count(input));
          return recorded;
        },
      };
    },

    close() {
      for (const off of unsubscribe) off();
    },
  };
}
