import { chmod, lstat, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdoptionService } from './archive/adopt.js';
import { createCatalogueService } from './archive/catalogue.js';
import type { ArchiveEvents } from './archive/events.js';
import { createArchiveFiles, createFileIndexer } from './archive/files.js';
import type { MaintenanceTaskRecord } from './archive/maintenance-task.js';
import { createMaintenanceWorker } from './archive/maintenance-worker.js';
import { type ArchivePlacement, READS_EVERY_IMAGE, ownImagesOf } from './archive/placement.js';
import { createRecoveryService } from './archive/recovery.js';
import { createReverifySchedule } from './archive/reverify-schedule.js';
import { createArchiveService } from './archive/service.js';
import { createVerificationWorker } from './archive/verification-worker.js';
import { createAuditTrail } from './audit/trail.js';
import { authPolicyOf } from './auth/policy.js';
import { type AuthService, createAuthService } from './auth/service.js';
import { systemClock } from './clock.js';
import { type ArchiveRelay, createArchiveRelay, relayedArchiveFiles } from './cluster/archive-relay.js';
import { type Dispatch, createDispatch } from './cluster/dispatch.js';
import { type EventBridge, createEventBridge } from './cluster/event-bridge.js';
import type { NodeRole } from './cluster/model.js';
import { createNodeCaller } from './cluster/node-calls.js';
import { createNodeWatch } from './cluster/node-watch.js';
import { createNodeRegistry, driveReport, processAlive } from './cluster/registry.js';
import { createRemoteDrives, followDriveCommands } from './cluster/remote-drives.js';
import { assertRoleFits, partsOfRole, routesOfRole, sharesNodeList } from './cluster/roles.js';
import { shareLiveEvents } from './cluster/share-events.js';
import type { Config } from './config/schema.js';
import { createArchiveRepository } from './db/archive-repository.js';
import { createAuditRepository } from './db/audit-repository.js';
import { createAutomationRepository } from './db/automation-repository.js';
import { createCategoryRepository, createPreferenceRepository } from './db/catalogue-repository.js';
import { createClusterRepository } from './db/cluster-repository.js';
import { type EmbeddedDatabase, embeddedOnly } from './db/database.js';
import { createFileIndexRepository } from './db/file-index-repository.js';
import { createJobRepository } from './db/job-repository.js';
import { createLogRepository } from './db/log-repository.js';
import { createMaintenanceTaskRepository } from './db/maintenance-task-repository.js';
import { createNotificationRepository } from './db/notification-repository.js';
import { openConfiguredDatabase, queueNodeOf } from './db/open.js';
import { createPushSubscriptionRepository } from './db/push-subscription-repository.js';
import { createSecretRepository } from './db/secret-repository.js';
import { createSettingsRepository } from './db/settings-repository.js';
import { createSqliteQueue } from './db/sqlite-queue.js';
import { createVerificationTaskRepository } from './db/verification-task-repository.js';
import { type DriveServiceDeps, createDriveService } from './drives/service.js';
import { createDriveStates } from './drives/state.js';
import { startUdevMonitor } from './drives/udev-monitor.js';
import { createDiscWatch } from './drives/watch.js';
import { ConflictError, UnavailableError, errnoCode, errorMessage } from './errors.js';
import { createEventBus } from './events/bus.js';
import { type App, buildApp } from './http/app.js';
import { actorOf, createRequestGuard, credentialsOf, principalOf } from './http/guard.js';
import { createLiveHub } from './http/live.js';
import type { DeclaredRoute } from './http/permissions.js';
import { apiRoutes, probeRoutes } from './http/routes/index.js';
import { internalRoutes } from './http/routes/internal.js';
import { addressFilter } from './http/routes/metrics.js';
import { runImaging, verifyImage } from './imaging/engine.js';
import { type AutomationService, type DiscEventBus, createAutomationService } from './jobs/automation.js';
import type { JobEvents } from './jobs/events.js';
import { currentLeaseHolder, leaseHolderGone } from './jobs/lease-holder.js';
import { ACTIVE_JOB_STATUSES } from './jobs/model.js';
import { newWorkerId } from './jobs/queue.js';
import { createJobRunner } from './jobs/runner.js';
import { createJobService } from './jobs/service.js';
import type { JsonObject } from './json.js';
import type { Logger } from './log.js';
import { createEmailChannel } from './notifications/email.js';
import { createMqttChannel } from './notifications/mqtt.js';
import { VAPID_KEY_FILE, createPushChannel } from './notifications/push.js';
import { DEFAULT_OUTBOX_TIMING, type NotificationService, type OutboxTiming, createNotificationService } from './notifications/service.js';
import { STORAGE_EVENT_TYPES, storageEvent, storageLevelAfter } from './notifications/storage-events.js';
import { announceVerifications } from './notifications/verification-events.js';
import { runScheduledBackup } from './system/backup.js';
import { activeJobsByDevice, createDeviceStatusService } from './system/devices.js';
import { type EventLog, createEventLog } from './system/event-log.js';
import { type Housekeeping, createHousekeeping } from './system/housekeeping.js';
import { createServiceMetrics } from './system/metrics.js';
import { createOutputProbe } from './system/output-probe.js';
import { createReadiness, probeDatabaseWrite, runnerCheck } from './system/readiness.js';
import { applyStoredSettings, createSettingsService } from './system/settings.js';
import { createSystemStatus } from './system/status.js';
import { createStorageWatch } from './system/storage-watch.js';
import { registerWebRoutes, renderNotFoundPage } from './web/routes.js';
import type { WebSecurity } from './web/types.js';

/**
 * How often a cluster node's runner looks for work by itself: the dispatch brings it at once, so this
 * only catches a job whose message was lost (sent by `disk2iso create`, or left from a dead run).
 */
const CLUSTER_RUNNER_POLL_MS = 5000;
/** After missed cluster events, the live streams are sent the states of this many of the most recently changed jobs. */
const RESYNC_JOBS = 200;
/** Owner and group may connect to the unix socket (e.g. nginx in the disk2iso group), nobody else. */
const SOCKET_MODE = 0o660;
/** How often the service looks whether a scheduled backup is due (backup.interval_hours decides when one is). */
const BACKUP_CHECK_INTERVAL_MS = 10 * 60_000;
/** How often settings stored by another process (`disk2iso config set`) are looked for: a small table, read in well under a millisecond. */
const SETTINGS_SYNC_INTERVAL_MS = 2000;
/** How long after a probe that showed another disc the drive is probed again to confirm it (src/drives/watch.ts). */
const CONFIRM_CHANGE_MS = 1000;
/** How often housekeeping runs (system/housekeeping.ts: what past its retention is removed). */
const MAINTENANCE_INTERVAL_MS = 60_000;
/**
 * How long a start waits for its TCP port while another process holds it: after `kill -9`, a process
 * stuck in a read of a hung drive keeps its socket until the read returns.
 */
const LISTEN_RETRY_MS = 30_000;
/** The first and the longest pause between two tries. */
const LISTEN_BACKOFF_MS = { first: 250, max: 4000 };

export interface StartServerOptions {
  /** Loaded without the stored settings; they are applied from the database here. Shared and updated in place. */
  config: Config;
  log: Logger;
  version: string;
  /** Default true; false builds everything but leaves listening to the caller (app.inject in tests). */
  listen?: boolean;
  /** How long to keep trying a TCP port that is in use before giving up (default 30 s). */
  listenRetryMs?: number;
  /** Live stream timing (tests shorten the heartbeat). */
  live?: { flushIntervalMs?: number; heartbeatMs?: number; maxBufferedBytes?: number };
  /**
   * Drive checks (tests shorten the probe timeout so a drive that hangs does not hold up their start,
   * or give a sysfs tree and an ejector of their own to have an optical drive with a tray).
   */
  drives?: Omit<DriveServiceDeps, 'config' | 'log'>;
  /** Outbox timing (tests shorten the pause before a retry). */
  notifications?: Partial<OutboxTiming>;
  /** How often free space is compared with the storage thresholds (tests shorten it). */
  storage?: { intervalMs?: number };
  /**
   * Told the one-time setup link while no admin exists: at start, and again whenever the previous
   * link has expired. Default: the log.
   */
  onSetupLink?: (url: string) => void;
  /** Archive background work timing (tests look for due verifications more often). */
  archive?: { reverifyCheckMs?: number };
  /** What this process runs in the cluster (`disk2iso serve --role`); default `all`, the only role of the embedded database. */
  role?: NodeRole;
}

export interface RunningServer {
  app: App;
  routeTable: DeclaredRoute[];
  config: Config;
  auth: AuthService;
  /** Discs and drives coming and going (src/drives/watch.ts) and what automation did about them. */
  discEvents: DiscEventBus;
  automation: AutomationService;
  /** The durable stream of domain events and its channels. */
  notifications: NotificationService;
  /** `http://HOST:PORT` (the real port when 0 was asked for) or `unix:PATH`; null when not listening. */
  url: string | null;
  /**
   * Graceful stop: refuses new requests, pauses running jobs (maps saved) and queues them again so
   * the next start continues them, ends live streams, closes the database. Safe to call twice.
   */
  close(reason?: string): Promise<void>;
}

/** Removes a socket file left by a process that died; refuses when a live server still answers on it. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return;
    throw error;
  }
  if (!isSocket) throw new ConflictError('socket_path_taken', `${path} exists and is not a socket; refusing to replace it`, { path });
  const answering = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (answering) throw new ConflictError('socket_in_use', `another server is listening on ${path}`, { path });
  await rm(path, { force: true });
}

export async function startServer(options: StartServerOptions): Promise<RunningServer> {
  const { config, log, version } = options;
  const database = await openConfiguredDatabase(config, log);
  try {
    const role = options.role ?? 'all';
    assertRoleFits(role, database.dialect);
    const parts = partsOfRole(role);
    const jobsRepository = createJobRepository(database);
    const archivesRepository = createArchiveRepository(database);
    const settingsRepository = createSettingsRepository(database);
    const verificationTasks = createVerificationTaskRepository(database);
    const logRepository = createLogRepository(database);
    const eventLog = createEventLog({ logs: logRepository, log });
    const audit = createAuditTrail({ repository: createAuditRepository(database) });

    const stored = await settingsRepository.list();
    await applyStoredSettings(config, Object.fromEntries(stored.map((setting) => [setting.key, setting.value])), (key, reason) =>
      eventLog.record({ level: 'warning', source: 'settings', message: `stored setting ${key} ignored: ${reason}`, details: { key } }),
    );

    const auth = createAuthService({ database, dataDir: config.data_dir, audit, policy: authPolicyOf(config) });
    // The cluster mode: live events cross instances through LISTEN/NOTIFY, work goes to a node through pg-boss.
    const clusterUrl = database.dialect === 'postgres' ? config.database.url : null;
    const nodeName = config.cluster.node_name;
    const bridge: EventBridge | null = clusterUrl === null ? null : createEventBridge({ url: clusterUrl, nodeId: nodeName, log });
    const dispatch: Dispatch | null = clusterUrl === null ? null : createDispatch({ url: clusterUrl, nodeId: nodeName, log });
    const queue = createSqliteQueue(database, {
      nodeId: queueNodeOf(config, database),
      ...(dispatch === null ? {} : { onRunnable: (tx, job) => dispatch.sendWithin(tx, job.nodeId ?? nodeName, job.id, job.priority) }),
    });
    const events = createEventBus<JobEvents>((error) => log.error({ err: error }, 'an event listener failed'));
    const archiveEvents = createEventBus<ArchiveEvents>((error) => log.error({ err: error }, 'an archive event listener failed'));
    /** What live streams show: this instance's events, and in the cluster the other instances' too (attached below). */
    const liveEvents = bridge === null ? events : createEventBus<JobEvents>((error) => log.error({ err: error }, 'a live event listener failed'));
    const liveArchiveEvents =
      bridge === null ? archiveEvents : createEventBus<ArchiveEvents>((error) => log.error({ err: error }, 'a live archive event listener failed'));
    const drives = createDriveService({ config, log, ...(clusterUrl === null ? {} : { node: nodeName }), ...options.drives });
    const discEvents: DiscEventBus = createEventBus((error) => log.error({ err: error }, 'a disc event listener failed'));
    // Set once the drive states exist: the watch asks them for the probe that confirms a change.
    let confirmChange: (id: string) => void = () => undefined;
    const discWatch = createDiscWatch({ events: discEvents, confirm: (id) => confirmChange(id) });
    // Set once the automation exists; until then (the first round, the baseline) no drive is watched.
    let watched: (id: string) => boolean = () => false;
    const driveStates = createDriveStates({
      drives,
      log,
      busyDeviceIds: async () => new Set((await activeJobsByDevice(jobsRepository)).keys()),
      watched: (id) => watched(id),
      onListing: discWatch.listed,
      onAnswer: discWatch.answered,
    });
    confirmChange = (id) => setTimeout(() => driveStates.refresh(id), CONFIRM_CHANGE_MS).unref();
    const devices = createDeviceStatusService({
      drives,
      states: driveStates,
      jobs: jobsRepository,
      ...(bridge === null ? {} : { remote: createRemoteDrives({ nodes: () => nodeRegistry.nodes(), bridge, log }) }),
    });
    // This process in the cluster's list of nodes, with the drives it owns (none for a web instance).
    const nodeRegistry = createNodeRegistry({
      repository: createClusterRepository(database),
      clock: systemClock,
      heartbeatMs: config.cluster.heartbeat_seconds * 1000,
      offlineAfterMs: config.cluster.offline_after_seconds * 1000,
      version,
      node: { id: config.cluster.node_name, role, hostname: hostname(), pid: process.pid, internalUrl: null },
      drives: () => (parts.drives ? driveStates.list().map((drive) => driveReport(drive, driveStates.peek(drive.id))) : []),
      exclusiveName: sharesNodeList(database.dialect),
      processAlive,
      onProblem: (message) => eventLog.record({ level: 'warning', source: 'cluster', message }),
    });
    const output = createOutputProbe(() => config.storage.output_dir);
    const metrics = createServiceMetrics({
      config,
      version,
      events,
      drives: driveStates,
      output,
      countJobs: () => jobsRepository.countByStatus(),
      activeJobs: async () => [...(await activeJobsByDevice(jobsRepository)).values()],
    });
    const push = createPushChannel({
      config,
      subscriptions: createPushSubscriptionRepository(database),
      keyFile: join(config.data_dir, VAPID_KEY_FILE),
      ...(clusterUrl === null ? {} : { sharedSecrets: createSecretRepository(database) }),
    });
    const notifications = createNotificationService({
      config,
      repository: createNotificationRepository(database),
      push,
      events,
      discEvents,
      log,
      email: createEmailChannel({
        config,
        checksumsOf: async (archiveId) => {
          const archive = await archivesRepository.get(archiveId);
          return archive === null
            ? null
            : Object.fromEntries(Object.entries(archive.checksums).filter((entry): entry is [string, string] => entry[1] !== undefined));
        },
        timeoutMs: options.notifications?.timeoutMs ?? DEFAULT_OUTBOX_TIMING.timeoutMs,
      }),
      timing: options.notifications,
    });
    // Verifications after imaging (the runner), asked for (the archive service) and by the background
    // worker are all counted, and each raises its domain event in the transaction that records it.
    const catalogue = metrics.countVerifications(
      announceVerifications(archivesRepository, {
        transaction: (work) => database.transaction(work),
        raiseWithin: (tx, draft) => notifications.raiseWithin(tx, draft.type, draft.payload),
      }),
    );
    const storageWatch = createStorageWatch({
      config,
      output,
      initialLevel: async () => storageLevelAfter((await notifications.listEvents({ types: STORAGE_EVENT_TYPES, limit: 1 }))[0]),
      onCrossing: async (crossing) => {
        const draft = storageEvent(crossing);
        await notifications.raise(draft.type, draft.payload);
      },
      onProblem: (message) => eventLog.record({ level: 'warning', source: 'storage', message }),
      ...options.storage,
    });
    const jobs = createJobService({
      config,
      queue,
      jobs: jobsRepository,
      drives: devices,
      events,
      log,
      ...(clusterUrl === null ? {} : { nodesOnline: () => nodeRegistry.online() }),
    });
    const leaseHolder = await currentLeaseHolder();
    const runner = createJobRunner({
      config,
      queue,
      jobs: jobsRepository,
      archives: catalogue,
      drives,
      events,
      log,
      runImaging,
      workerId: newWorkerId(),
      leaseHolder,
      holderGone: leaseHolderGone,
      // In the cluster, work arrives through the dispatch; the runner's own look is the safety net for a message that was lost.
      ...(dispatch === null ? {} : { pollMs: CLUSTER_RUNNER_POLL_MS }),
      // A web instance chose the path in its own output folder, which is not this node's.
      placesOwnImages: clusterUrl !== null && !config.cluster.shared_output,
    });
    const automation = createAutomationService({
      repository: createAutomationRepository(database),
      jobs,
      driveEvents: discEvents,
      jobEvents: events,
      onEvent: (level, message, details) => eventLog.record({ level, source: 'automation', message, details }),
    });
    watched = automation.watched;
    // In the cluster, without a shared output folder, each node reads only the images on its own disk.
    const placement: ArchivePlacement = clusterUrl === null ? READS_EVERY_IMAGE : { node: nodeName, shared: config.cluster.shared_output };
    const archives = createArchiveService({
      config,
      placement,
      archives: catalogue,
      tasks: verificationTasks,
      events: archiveEvents,
      verifyImage: (path, verifyOptions) => verifyImage(path, verifyOptions),
      onEvent: (level, message, details) => eventLog.record({ level, source: 'archives', message, details }),
    });
    const fileIndex = createFileIndexRepository(database);
    const archiveFiles = createArchiveFiles({ openArchiveImage: archives.openFile, index: fileIndex });
    const holderOf = async (archiveId: string) => (await archivesRepository.get(archiveId))?.nodeId;
    const relay: ArchiveRelay | null =
      clusterUrl === null
        ? null
        : createArchiveRelay({
            placement,
            holderOf,
            callNode: createNodeCaller({ secret: () => config.cluster.secret, nodes: () => nodeRegistry.nodes(), clock: systemClock }),
          });
    /** Folders of another node's images are listed by that node. */
    const servedFiles = relay === null ? archiveFiles : relayedArchiveFiles(archiveFiles, relay);
    /** A node that holds images on its own disk serves them to the others, signed with cluster.secret. */
    const servesImages = clusterUrl !== null && parts.jobs && config.cluster.secret !== '';
    const fileIndexer = createFileIndexer({
      node: ownImagesOf(placement),
      index: fileIndex,
      openArchiveImage: archives.openFile,
      onEvent: (level, message, details) => eventLog.record({ level, source: 'archives', message, details }),
    });
    const preferences = createPreferenceRepository(database);
    const catalogueService = createCatalogueService({
      outputDir: () => config.storage.output_dir,
      archives: catalogue,
      archiveService: archives,
      categories: createCategoryRepository(database),
      preferences,
    });
    const reverify = createReverifySchedule({
      config,
      archives: archivesRepository,
      tasks: verificationTasks,
      startVerification: archives.startVerification,
      imagingRunning: async () => (await jobsRepository.countByStatus()).running > 0,
      log,
      ...(options.archive?.reverifyCheckMs === undefined ? {} : { checkMs: options.archive.reverifyCheckMs }),
    });
    const verifier = createVerificationWorker({
      throttleFor: reverify.throttleFor,
      tasks: verificationTasks,
      archives: catalogue,
      check: archives.checkImage,
      events: archiveEvents,
      log,
      workerId: newWorkerId(),
      leaseHolder,
      holderGone: leaseHolderGone,
      leaseMs: config.jobs.lease_seconds * 1000,
      node: ownImagesOf(placement),
    });
    const maintenanceTasks = createMaintenanceTaskRepository(database);
    let pokeMaintenance: (task: MaintenanceTaskRecord) => void = () => undefined;
    const recovery = createRecoveryService({
      archives: archivesRepository,
      service: archives,
      tasks: maintenanceTasks,
      onQueued: (task) => pokeMaintenance(task),
    });
    // Through the catalogue imaging writes to: an adopted image is created the way an imaged one is.
    const adoption = createAdoptionService({ config, archives: catalogue, tasks: maintenanceTasks, onQueued: (task) => pokeMaintenance(task) });
    const archiveMaintenance = createMaintenanceWorker({
      node: ownImagesOf(placement),
      tasks: maintenanceTasks,
      handlers: { ...recovery.handlers, adopt: adoption.handler },
      onChange: (task) => {
        if (task.status === 'failed')
          eventLog.record({
            level: 'warning',
            source: 'archives',
            message: `${task.kind} task ${task.id} failed: ${task.errorMessage ?? ''}`,
            details: { task_id: task.id, archive_id: task.archiveId },
          });
      },
      log,
    });
    pokeMaintenance = archiveMaintenance.poke;
    /** The redundancy of recovery data asked for without one, and made for every new image when set. */
    const defaultRedundancy = () => (config.archive.recovery_redundancy_percent > 0 ? config.archive.recovery_redundancy_percent : 10);
    const housekeeping = createHousekeeping({
      config,
      auth,
      pruneJobLogs: (before) => jobsRepository.pruneLogs(before),
      pruneLogs: (before) => logRepository.prune(before),
      pruneVerificationTasks: (before) => verificationTasks.pruneFinished(before),
    });
    const settings = createSettingsService({
      config,
      settings: settingsRepository,
      onChange: (key, from, to, restartRequired) =>
        eventLog.record({
          level: 'info',
          source: 'settings',
          message: `setting ${key} changed from ${JSON.stringify(from)} to ${JSON.stringify(to)}${restartRequired ? ' (takes effect after a restart)' : ''}`,
          details: { key },
        }),
    });
    let closing: Promise<void> | null = null;
    const system = createSystemStatus({
      config,
      version,
      countJobs: () => jobsRepository.countByStatus(),
      checkQueue: () => queue.positions(),
      workers: () => (closing !== null ? 'stopped' : 'running'),
      countDrives: async () => driveStates.list().length,
      countVerificationTasks: () => verificationTasks.countByStatus(),
      housekeeping: () => ({
        interval_seconds: MAINTENANCE_INTERVAL_MS / 1000,
        retention_days: housekeeping.retentionDays(),
        last_run: housekeeping.last(),
      }),
    });
    const sharing =
      bridge === null
        ? null
        : shareLiveEvents({
            bridge,
            local: { jobs: events, archive: archiveEvents, domain: notifications },
            live: { jobs: liveEvents, archive: liveArchiveEvents },
            onListenerError: (error) => log.error({ err: error }, 'a live event listener failed'),
            recentJobs: async () => (await jobsRepository.list({ sort: 'updated', order: 'desc', limit: RESYNC_JOBS })).items,
          });
    // Pages show a job whose node went offline as such, also live: the node itself can no longer say so.
    const nodeWatch =
      clusterUrl === null || !parts.pages
        ? null
        : createNodeWatch({
            read: () => nodeRegistry.online(),
            jobsOf: async (node) =>
              (await jobsRepository.list({ statuses: ['queued', ...ACTIVE_JOB_STATUSES], limit: 1000 })).items.filter((job) => job.nodeId === node),
            show: (job) => liveEvents.emit('job.updated', { job }),
            everyMs: config.cluster.heartbeat_seconds * 1000,
            log,
          });
    const live = createLiveHub({
      events: liveEvents,
      archiveEvents: liveArchiveEvents,
      domainEvents: sharing?.domainEvents ?? notifications,
      ...(nodeWatch === null ? {} : { nodeOnline: nodeWatch.online }),
      ...options.live,
    });
    const mqtt = createMqttChannel({
      config,
      drives: driveStates,
      jobEvents: events,
      activeJobs: () => activeJobsByDevice(jobsRepository),
      eject: (driveId) => devices.eject(driveId),
      onEvent: (level, message, details) => eventLog.record({ level, source: 'mqtt', message, details }),
      version,
    });
    const stopMirroring = eventLog.follow(events);
    // A job that ended may have ejected its disc, or the drive may hold another one by now.
    const stopRefreshing = events.on('job.finished', ({ job }) => driveStates.refresh(job.deviceId));
    // A finished job may have archived an image: its files are indexed in the background.
    const stopIndexing = events.on('job.finished', () => fileIndexer.wake());
    // archive.recovery_redundancy_percent: every image a job archives gets recovery data of it.
    const stopRecoveryDefault = events.on('job.finished', ({ job }) => {
      if (job.status !== 'completed' || job.archiveId === null || config.archive.recovery_redundancy_percent === 0) return;
      recovery
        .create(job.archiveId, config.archive.recovery_redundancy_percent, null)
        .catch((error: unknown) =>
          eventLog.record({ level: 'warning', source: 'archives', message: `recovery data for ${job.archiveId} not queued: ${errorMessage(error)}` }),
        );
    });
    // Scheduled verifications hold while a disc is imaged (archive.reverify_pause_while_imaging).
    const stopWatchingImaging = [
      events.on('job.updated', ({ job }) => {
        if (job.status === 'running') reverify.imagingChanged(true);
      }),
      events.on('job.finished', () => reverify.imagingChanged()),
    ];

    const webSecurity: WebSecurity = {
      user: principalOf,
      currentUser: (request) => request.principal,
      csrfToken: (request) => principalOf(request).csrfToken ?? '',
    };
    const probes = {
      health: async () => {
        if (closing !== null) throw new UnavailableError('shutting_down', 'the service is shutting down');
        await jobsRepository.countByStatus().catch((error: unknown) => {
          throw new UnavailableError('database_unavailable', `the database does not answer: ${errorMessage(error)}`);
        });
      },
      readiness: createReadiness({
        config,
        output,
        writeDatabase: () => probeDatabaseWrite(database),
        // A web instance runs no jobs: its readiness does not hang on a runner it does not have.
        checkRunner: parts.jobs ? runnerCheck(() => runner.lastPoll()) : () => undefined,
      }),
      metrics: {
        contentType: metrics.contentType,
        render: () => metrics.render(),
        allowAddress: addressFilter(config.metrics.allow_addresses),
      },
    };
    const { app, routeTable } = await buildApp({
      version,
      logger: log,
      accepting: () => closing === null,
      // Live streams hold their connections open; they must end before the server can finish closing.
      beforeClose: () => live.close(),
      guard: createRequestGuard({ auth, audit }),
      audit,
      trustedProxies: config.security.trusted_proxies,
      onUnixSocket: config.server.socket !== '',
      observeResponse: (answered) => metrics.observeResponse(answered),
      // No route's guard runs for an unknown URL: the session is looked up here, so the page keeps the user's navigation.
      pageNotFound: async (request, reply) => {
        const cookie = credentialsOf(request).cookie;
        request.principal = cookie === undefined ? null : await auth.authenticateRequest({ cookie }).catch(() => null);
        return renderNotFoundPage(request, reply, webSecurity);
      },
      rateLimits: {
        general: () => ({ perSecond: config.security.rate_limit_per_second, burst: config.security.rate_limit_burst }),
        login: () => ({ perSecond: config.security.login_rate_per_minute / 60, burst: config.security.login_rate_burst }),
      },
      onServerError: (error, request) =>
        eventLog.record({
          level: 'error',
          source: 'http',
          message: `${request.method} ${request.routeOptions.url ?? request.url} failed: ${errorMessage(error)}`,
        }),
      // A worker serves no pages and no API: what load balancers and monitoring ask for, no more.
      routes: [
        ...routesOfRole(parts, probeRoutes(probes), [
          ...apiRoutes({
            jobs,
            archives,
            archiveFiles: servedFiles,
            ...(relay === null ? {} : { relay }),
            catalogue: catalogueService,
            devices,
            auth,
            system,
            nodes: nodeRegistry,
            settings,
            eventLog,
            live,
            automation,
            notifications,
            mqtt,
            push,
            integrity: { recovery, adoption, defaultRedundancy },
            ...probes,
          }),
          (scope) =>
            registerWebRoutes(scope, {
              config,
              jobs,
              devices,
              archives,
              archiveFiles: servedFiles,
              catalogue: catalogueService,
              system,
              nodes: nodeRegistry,
              settings,
              automation,
              notifications,
              mqtt,
              integrity: { recovery, adoption, defaultRedundancy },
              preferences,
              push,
              security: webSecurity,
              accounts: {
                login: auth.login,
                logout: auth.logout,
                setup: auth.setup,
                users: auth.users,
                apiKeys: auth.apiKeys,
                audit: auth.audit,
                actor: actorOf,
              },
            }),
        ]),
        ...(servesImages
          ? [internalRoutes({ node: nodeName, secret: () => config.cluster.secret, clock: systemClock, holderOf, archives, files: archiveFiles })]
          : []),
      ],
    });

    // First: in the cluster, a name another live process holds is refused before anything of this one runs.
    await nodeRegistry.start();
    // Before anything makes a job runnable: its message to the node goes out in the same transaction.
    await bridge?.start();
    await dispatch?.start();
    await nodeWatch?.start();
    const clusterLinks: Array<() => void> = [];
    if (bridge !== null && dispatch !== null) {
      // A job another instance made runnable for this node: its message is fetched now, not at the next poll.
      const forThisNode = (job: { nodeId: string | null; status: string }) => job.status === 'queued' && job.nodeId === nodeName;
      clusterLinks.push(
        liveEvents.on('job.created', ({ job }) => {
          if (forThisNode(job)) dispatch.wake();
        }),
        liveEvents.on('job.updated', ({ job }) => {
          if (forThisNode(job)) dispatch.wake();
        }),
      );
      if (parts.drives)
        clusterLinks.push(
          followDriveCommands(bridge, { node: nodeName, eject: (deviceId) => devices.eject(deviceId), looked: () => driveStates.noteInterest(), log }),
        );
    }
    // Before the runner and before listening: the first answers are there when the first request asks (each probe bounded by its timeout).
    if (parts.drives) {
      await automation.start();
      await driveStates.start();
      // The drives of the first round in the list of nodes now, not at the next heartbeat.
      await nodeRegistry.beat();
    }
    // A changed drive is probed at once, not at the next round; a new optical drive is listed at once.
    const udevMonitor = !parts.drives
      ? null
      : startUdevMonitor({
          onDevice: (path) => {
            const drive = driveStates.list().find((known) => known.path === path);
            if (drive) driveStates.refresh(drive.id);
            else if (config.drives.scan_optical && /^\/dev\/sr\d+$/.test(path)) void driveStates.nextRound();
          },
          onProblem: (message) => eventLog.record({ level: 'warning', source: 'drives', message }),
        });
    // Before the runner: a job it takes over from a crashed run is announced as started.
    notifications.start();
    // The VAPID key pair is made at the first start, not when the first browser asks for it.
    push.publicKey().catch((error: unknown) => log.error({ err: error }, 'the VAPID key for push notifications cannot be made'));
    await mqtt.start();
    await storageWatch.start();
    if (parts.jobs) {
      await runner.start();
      dispatch?.onWork((jobId) => runner.offer(jobId));
    }
    if (parts.archiveWork) {
      verifier.start();
      fileIndexer.start();
      reverify.start();
      await archiveMaintenance.start();
    }
    /** Last: the runner's pauses at a stop still send their messages, and live streams have ended before the bridge closes. */
    const leaveCluster = async (): Promise<void> => {
      for (const unlink of clusterLinks) unlink();
      nodeWatch?.stop();
      sharing?.stop();
      await dispatch?.stop().catch((error: unknown) => log.error({ err: error }, 'the job dispatch did not stop cleanly'));
      await bridge?.close().catch((error: unknown) => log.error({ err: error }, 'the cluster event bridge did not close cleanly'));
    };
    const maintenance = startMaintenance({ auth, housekeeping, log, eventLog, onSetupLink: options.onSetupLink });

    let url: string | null = null;
    if (options.listen ?? true) {
      try {
        url = await listen(app, config, {
          retryMs: options.listenRetryMs ?? LISTEN_RETRY_MS,
          onRetry: (message, details) => eventLog.record({ level: 'warning', source: 'service', message, details }),
        });
      } catch (error) {
        await runner.stop();
        await reverify.stop();
        await verifier.stop();
        await fileIndexer.stop();
        await archiveMaintenance.stop();
        udevMonitor?.stop();
        await nodeRegistry.stop();
        await storageWatch.stop();
        await notifications.stop();
        await mqtt.stop();
        await driveStates.stop();
        await automation.stop();
        await app.close();
        await leaveCluster();
        throw error;
      }
    }
    if (servesImages && url !== null) {
      const internalUrl = config.cluster.internal_url !== '' ? config.cluster.internal_url : internalUrlOf(url);
      if (internalUrl === null)
        eventLog.record({ level: 'warning', source: 'cluster', message: 'set cluster.internal_url: the other nodes cannot reach a unix socket' });
      else await nodeRegistry.advertise(internalUrl);
    }
    eventLog.record({
      level: 'info',
      source: 'service',
      message: `disk2iso ${version} started${url ? ` on ${url}` : ''}`,
      details: { version, data_dir: config.data_dir },
    });
    await notifications.raise('service.started', { version });
    await maintenance.start(url);
    // `disk2iso config set` stores settings from another process; the service takes them over here.
    const settingsSync = setInterval(() => {
      settings.syncStored().catch((error: unknown) => log.error({ err: error }, 'reading stored settings failed'));
    }, SETTINGS_SYNC_INTERVAL_MS);
    settingsSync.unref();
    let backupRun: Promise<void> = Promise.resolve();
    // Scheduled backups copy the embedded file; PostgreSQL is backed up with its own tools (pg_dump,
    // base backups), and the backup settings are locked as not applicable there (settingLock).
    const embedded = database.dialect === 'sqlite' ? embeddedOnly(database) : null;
    const backUpWhenDue = (target: EmbeddedDatabase): void => {
      backupRun = backupRun
        .then(() => runScheduledBackup({ config, database: target, version }))
        .then(({ created, removed }) => {
          if (created !== null)
            eventLog.record({ level: 'info', source: 'backup', message: `scheduled backup written: ${created}`, details: { file: created } });
          if (removed.length > 0) {
            eventLog.record({
              level: 'info',
              source: 'backup',
              message: `${removed.length} backup(s) older than ${config.backup.keep_days} days removed`,
              details: { removed },
            });
          }
        })
        .catch((error: unknown) => eventLog.record({ level: 'error', source: 'backup', message: `scheduled backup failed: ${errorMessage(error)}` }));
    };
    let backupTimer: NodeJS.Timeout | undefined;
    if (embedded !== null) {
      backUpWhenDue(embedded);
      backupTimer = setInterval(() => backUpWhenDue(embedded), BACKUP_CHECK_INTERVAL_MS);
      backupTimer.unref();
    }

    const shutdown = async (reason: string): Promise<void> => {
      eventLog.record({ level: 'info', source: 'service', message: `stopping (${reason})` });
      maintenance.stop();
      clearInterval(settingsSync);
      clearInterval(backupTimer);
      // First: no scheduled verification is queued while the workers stop.
      await reverify.stop();
      await Promise.all([runner.stop(), verifier.stop(), storageWatch.stop(), fileIndexer.stop(), archiveMaintenance.stop()]);
      // After the runner: the pauses of its jobs at this stop are recorded, and sent after the next start.
      await notifications.stop();
      // After the runner: the last states are out, then `offline` (a kill leaves that to the broker's last will).
      await mqtt.stop();
      stopRefreshing();
      stopIndexing();
      for (const stop of stopWatchingImaging) stop();
      stopRecoveryDefault();
      metrics.close();
      udevMonitor?.stop();
      await driveStates.stop();
      await automation.stop();
      stopMirroring();
      await app.close();
      await leaveCluster();
      // After the last request: the node leaves the list once it answers no more.
      await nodeRegistry.stop().catch((error: unknown) => log.error({ err: error }, 'the node could not leave the list of nodes'));
      if (config.server.socket !== '' && url !== null) await rm(config.server.socket, { force: true });
      eventLog.record({ level: 'info', source: 'service', message: 'stopped' });
      await backupRun;
      await eventLog.flush();
      await database.close();
    };

    return {
      app,
      routeTable,
      config,
      auth,
      discEvents,
      automation,
      notifications,
      url,
      close(reason = 'requested') {
        closing ??= shutdown(reason);
        return closing;
      },
    };
  } catch (error) {
    await database.close();
    throw error;
  }
}

/** Where the other nodes reach this one by default: the address it listens on, its host name when that is every address; null on a unix socket. */
function internalUrlOf(url: string): string | null {
  if (!url.startsWith('http://')) return null;
  const listened = new URL(url);
  if (listened.hostname === '0.0.0.0' || listened.hostname === '[::]') listened.hostname = hostname();
  return listened.origin;
}

interface ListenRetry {
  retryMs: number;
  onRetry: (message: string, details: JsonObject) => void;
}

async function listen(app: App, config: Config, retry: ListenRetry): Promise<string> {
  const socket = config.server.socket;
  if (socket !== '') {
    await clearStaleSocket(socket);
    await app.listen({ path: socket });
    await chmod(socket, SOCKET_MODE);
    return `unix:${socket}`;
  }
  await listenOnPort(app, config.server.host, config.server.port, retry);
  const address = app.server.address();
  if (address === null || typeof address === 'string') return `http://${config.server.host}:${config.server.port}`;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/** Tries the port again, with growing pauses, while another process holds it; gives up after `retry.retryMs`. */
async function listenOnPort(app: App, host: string, port: number, retry: ListenRetry): Promise<void> {
  const deadline = Date.now() + retry.retryMs;
  for (let pause = LISTEN_BACKOFF_MS.first; ; pause = Math.min(pause * 2, LISTEN_BACKOFF_MS.max)) {
    try {
      await app.listen({ host, port });
      return;
    } catch (error) {
      if (errnoCode(error) !== 'EADDRINUSE') throw error;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new ConflictError(
          'address_in_use',
          `${host} port ${port} is still in use after ${Math.round(retry.retryMs / 1000)} s: another process holds it (another disk2iso, or one killed while stuck in a read of a drive); stop it, or choose another port with --port`,
          { host, port },
        );
      }
      retry.onRetry(`${host} port ${port} is in use; trying again for up to ${Math.ceil(left / 1000)} s`, { host, port });
      await sleep(Math.min(pause, left));
    }
  }
}

interface MaintenanceDeps {
  auth: AuthService;
  housekeeping: Housekeeping;
  log: Logger;
  eventLog: Pick<EventLog, 'record'>;
  onSetupLink: ((url: string) => void) | undefined;
}

/**
 * The service's periodic upkeep: a housekeeping round (what is past its retention goes), and a
 * valid setup link on offer while no admin exists.
 */
function startMaintenance(deps: MaintenanceDeps): { start(url: string | null): Promise<void>; stop(): void } {
  const { auth, housekeeping, log, eventLog } = deps;
  let timer: NodeJS.Timeout | null = null;
  let setupExpiresMs = 0;
  let baseUrl: string | null = null;

  const announce = deps.onSetupLink ?? ((link: string) => log.warn({ setup_url: link }, `no admin exists yet: create one at ${link}`));

  async function offerSetupLink(): Promise<void> {
    if (Date.now() < setupExpiresMs || !(await auth.setup.needed())) return;
    const token = await auth.setup.createToken();
    setupExpiresMs = Date.parse(token.expiresAt);
    announce(`${baseUrl ?? 'http://HOST:PORT'}/setup?token=${token.token}`);
  }

  async function tick(): Promise<void> {
    const round = await housekeeping.run();
    if (round.error !== null) eventLog.record({ level: 'error', source: 'service', message: `housekeeping failed: ${round.error}` });
    const removed = Object.entries(round.removed).filter(([, count]) => count > 0);
    if (removed.length > 0) {
      eventLog.record({
        level: 'info',
        source: 'service',
        message: `housekeeping removed ${removed.map(([kind, count]) => `${count} ${kind.replaceAll('_', ' ')}`).join(', ')}`,
        details: Object.fromEntries(removed),
      });
    }
    await offerSetupLink();
  }

  const run = (): Promise<void> =>
    tick().catch((error: unknown) => eventLog.record({ level: 'error', source: 'service', message: `housekeeping failed: ${errorMessage(error)}` }));

  return {
    async start(url) {
      baseUrl = url?.startsWith('http') ? url : null;
      // The first round runs before the service reports itself started, so the setup link comes first.
      await run();
      timer = setInterval(() => void run(), MAINTENANCE_INTERVAL_MS);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = null;
    },
  };
}
