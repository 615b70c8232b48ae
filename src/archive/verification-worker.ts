import type { ArchiveRepository } from '../db/archive-repository.js';
import type { VerificationTaskRepository } from '../db/verification-task-repository.js';
import { DomainError, errorMessage } from '../errors.js';
import type { ReadThrottle } from '../imaging/throttle.js';
import type { LeaseHolder } from '../jobs/model.js';
import type { Logger } from '../log.js';
import type { ArchiveEventBus } from './events.js';
import type { ArchiveService, VerificationProgress } from './service.js';
import type { VerificationTaskRecord } from './verification-task.js';

export interface VerificationWorkerDeps {
  tasks: VerificationTaskRepository;
  archives: Pick<ArchiveRepository, 'recordVerificationWithin'>;
  /** The re-hash itself (the archive service's checkImage). */
  check: ArchiveService['checkImage'];
  events: ArchiveEventBus;
  log: Logger;
  workerId: string;
  /** The process this worker runs in, recorded with each lease it takes. */
  leaseHolder: LeaseHolder;
  holderGone: (holder: LeaseHolder) => Promise<boolean>;
  leaseMs: number;
  /** The bandwidth cap a task reads under, if any (the re-verification schedule's, for the tasks it queued). */
  throttleFor?: (task: VerificationTaskRecord) => ReadThrottle | undefined;
  /** How often the worker looks for work when nothing woke it (default 1 s). */
  pollMs?: number;
  /** In a cluster without a shared output folder, this node: it takes only the tasks of the images on its own disk (ownImagesOf). */
  node?: string | null;
}

export interface VerificationWorker {
  start(): void;
  /** Stops every running re-hash and gives its task back to the queue, so the next start runs it again. */
  stop(): Promise<void>;
}

/**
 * Tasks run one at a time: a re-hash reads the whole image as fast as the disk allows, and two on
 * the same disk would only slow each other (and a running imaging job) down.
 */
const MAX_RUNNING = 1;
/** Progress goes to the database at most this often; live events follow the hash's own pace (four a second). */
const DB_PROGRESS_INTERVAL_MS = 1000;

type StopReason = 'cancel' | 'shutdown' | 'lease_lost';

/**
 * Runs queued verification tasks in the background, each under a lease it renews, so a request
 * never waits for a re-hash (a 50 GB image takes minutes; a proxy gives up after one). Progress
 * goes out live on the event bus and, once a second, to the task's row; a cancel asked for through
 * the service reaches the running task at once through the bus, and through its row otherwise.
 */
export function createVerificationWorker(deps: VerificationWorkerDeps): VerificationWorker {
  const { tasks, events, log, workerId, leaseMs } = deps;
  const runs = new Map<string, { controller: AbortController; done: Promise<void> }>();
  let stopping = false;
  let loop: Promise<void> = Promise.resolve();
  let wakeUp: (() => void) | null = null;

  const publish = (task: VerificationTaskRecord | null): void => {
    if (task !== null) events.emit('archive.verification', { task });
  };

  async function run(task: VerificationTaskRecord, controller: AbortController): Promise<void> {
    const stop = (reason: StopReason) => {
      if (!controller.signal.aborted) controller.abort(reason);
    };
    const heartbeat = setInterval(
      () => {
        tasks.heartbeat(task.id, workerId, leaseMs).then(
          (held) => {
            if (!held) stop('lease_lost');
          },
          (error: unknown) => log.error({ err: error, taskId: task.id }, 'verification heartbeat failed'),
        );
      },
      Math.max(1000, Math.floor(leaseMs / 3)),
    );
    heartbeat.unref();

    let latest = task;
    let lastDbWrite = 0;
    let pendingWrite: Promise<unknown> = Promise.resolve();
    const onProgress = (progress: VerificationProgress): void => {
      latest = {
        ...latest,
        bytesDone: progress.bytesDone,
        bytesTotal: progress.bytesTotal,
        speedBps: Math.round(progress.rateBps),
        etaSeconds: progress.etaSeconds === null ? null : Math.round(progress.etaSeconds),
        updatedAt: new Date().toISOString(),
      };
      publish(latest);
      if (Date.now() - lastDbWrite < DB_PROGRESS_INTERVAL_MS) return;
      lastDbWrite = Date.now();
      const snapshot = latest;
      pendingWrite = pendingWrite
        .then(() =>
          tasks.progress(task.id, workerId, {
            bytesDone: snapshot.bytesDone,
            bytesTotal: snapshot.bytesTotal,
            speedBps: snapshot.speedBps,
            etaSeconds: snapshot.etaSeconds,
          }),
        )
        .then((stored) => {
          if (stored === null) stop('lease_lost');
          else if (stored.cancelRequested) stop('cancel');
        })
        .catch((error: unknown) => log.error({ err: error, taskId: task.id }, 'verification progress update failed'));
    };

    try {
      const throttle = deps.throttleFor?.(task);
      const input = await deps.check(task.archiveId, { signal: controller.signal, onProgress, ...(throttle === undefined ? {} : { throttle }) });
      await pendingWrite;
      publish(
        await tasks.finish(task.id, workerId, async (tx) => {
          const entry = await deps.archives.recordVerificationWithin(tx, task.archiveId, { ...input, requestedBy: task.requestedBy, origin: task.origin });
          return { status: 'completed', verificationId: entry.id, ok: entry.ok };
        }),
      );
    } catch (error) {
      await pendingWrite;
      const reason = controller.signal.aborted ? (controller.signal.reason as StopReason) : null;
      if (reason === 'shutdown') publish(await tasks.release(task.id, workerId));
      else if (reason === 'cancel') publish(await tasks.finish(task.id, workerId, async () => ({ status: 'cancelled' })));
      else if (reason === 'lease_lost') log.warn({ taskId: task.id }, 'verification lease lost; another worker may run the task');
      else {
        if (!(error instanceof DomainError)) log.error({ err: error, taskId: task.id }, 'verification failed unexpectedly');
        const errorCode = error instanceof DomainError ? error.code : 'internal_error';
        const message = error instanceof DomainError ? error.message : `internal error: ${errorMessage(error)}`;
        publish(await tasks.finish(task.id, workerId, async () => ({ status: 'failed', errorCode, errorMessage: message })));
      }
    } finally {
      clearInterval(heartbeat);
    }
  }

  function launch(task: VerificationTaskRecord): void {
    const controller = new AbortController();
    const done = run(task, controller)
      .catch((error: unknown) => log.error({ err: error, taskId: task.id }, 'could not record the end of a verification'))
      .finally(() => {
        runs.delete(task.id);
        wake();
      });
    runs.set(task.id, { controller, done });
  }

  async function claimLoop(): Promise<void> {
    while (!stopping) {
      try {
        for (const recovered of await tasks.recoverExpired(deps.holderGone)) publish(recovered);
        const task =
          runs.size < MAX_RUNNING
            ? await tasks.claimNext(workerId, { leaseMs, holder: deps.leaseHolder, maxRunning: MAX_RUNNING, node: deps.node ?? null })
            : null;
        if (task !== null) {
          publish(task);
          launch(task);
          continue;
        }
      } catch (error) {
        log.error({ err: error }, 'claiming a verification task failed');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deps.pollMs ?? 1000);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeUp = null;
    }
  }

  function wake(): void {
    wakeUp?.();
  }

  const unsubscribe = events.on('archive.verification', ({ task }) => {
    if (task.status === 'queued') wake();
    else if (task.cancelRequested) runs.get(task.id)?.controller.abort('cancel' satisfies StopReason);
  });

  return {
    start() {
      loop = claimLoop();
    },
    async stop() {
      stopping = true;
      unsubscribe();
      wake();
      for (const { controller } of runs.values()) {
        if (!controller.signal.aborted) controller.abort('shutdown' satisfies StopReason);
      }
      await Promise.all([...runs.values()].map((active) => active.done));
      await loop;
    },
  };
}
