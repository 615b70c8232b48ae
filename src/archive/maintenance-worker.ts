import type { MaintenanceTaskRepository } from '../db/maintenance-task-repository.js';
import { DomainError, errorMessage } from '../errors.js';
import type { JsonObject } from '../json.js';
import type { Logger } from '../log.js';
import type { MaintenanceKind, MaintenanceTaskRecord } from './maintenance-task.js';

/** What a task's work gets: a signal a cancel or a shutdown aborts, and where its progress goes. */
interface MaintenanceContext {
  signal: AbortSignal;
  progress(percent: number): void;
}

/** The work of one kind of task; returns what the task's result records. */
export type MaintenanceHandler = (task: MaintenanceTaskRecord, context: MaintenanceContext) => Promise<JsonObject>;

export interface MaintenanceWorkerDeps {
  tasks: MaintenanceTaskRepository;
  handlers: Record<MaintenanceKind, MaintenanceHandler>;
  /** Told of every change of a task (live streams, tests). */
  onChange?: (task: MaintenanceTaskRecord) => void;
  log: Logger;
  pollMs?: number;
  /** In a cluster without a shared output folder, this node: it takes only the tasks of the images on its own disk (ownImagesOf). */
  node?: string | null;
}

export interface MaintenanceWorker {
  /** Queues again what a stopped service left running, then takes tasks one at a time. */
  start(): Promise<void>;
  /** Wakes the worker for a task just queued, or a cancel just asked for. */
  poke(task?: MaintenanceTaskRecord): void;
  /** Stops the running task and gives it back to the queue. */
  stop(): Promise<void>;
}

/** Progress goes to the database at most this often. */
const PROGRESS_INTERVAL_MS = 1000;

/**
 * Runs maintenance tasks one at a time: each reads (or writes) a whole image, and two at once on
 * the same disk would only slow each other and imaging down.
 */
export function createMaintenanceWorker(deps: MaintenanceWorkerDeps): MaintenanceWorker {
  const { tasks, log } = deps;
  const notify = (task: MaintenanceTaskRecord | null) => {
    if (task !== null) deps.onChange?.(task);
  };
  let stopping = false;
  let loop: Promise<void> = Promise.resolve();
  let wakeUp: (() => void) | null = null;
  let current: { task: MaintenanceTaskRecord; controller: AbortController } | null = null;

  async function run(task: MaintenanceTaskRecord): Promise<void> {
    const controller = new AbortController();
    current = { task, controller };
    let lastWrite = 0;
    let pending: Promise<unknown> = Promise.resolve();
    const progress = (percent: number) => {
      if (Date.now() - lastWrite < PROGRESS_INTERVAL_MS) return;
      lastWrite = Date.now();
      pending = pending
        .then(() => tasks.progress(task.id, percent))
        .then((stored) => {
          notify(stored);
          if (stored?.cancelRequested) controller.abort('cancel');
        })
        .catch((error: unknown) => log.error({ err: error, taskId: task.id }, 'maintenance progress update failed'));
    };
    try {
      const result = await deps.handlers[task.kind](task, { signal: controller.signal, progress });
      await pending;
      notify(await tasks.finish(task.id, { status: 'completed', result }));
    } catch (error) {
      await pending;
      const reason = controller.signal.aborted ? controller.signal.reason : null;
      if (reason === 'shutdown') notify((await tasks.requeueRunning(task.id))[0] ?? null);
      else if (reason === 'cancel') notify(await tasks.finish(task.id, { status: 'cancelled' }));
      else {
        if (!(error instanceof DomainError)) log.error({ err: error, taskId: task.id }, 'maintenance task failed unexpectedly');
        const errorCode = error instanceof DomainError ? error.code : 'internal_error';
        const message = error instanceof DomainError ? error.message : `internal error: ${errorMessage(error)}`;
        notify(await tasks.finish(task.id, { status: 'failed', errorCode, errorMessage: message }));
      }
    } finally {
      current = null;
    }
  }

  async function claimLoop(): Promise<void> {
    while (!stopping) {
      try {
        const task = await tasks.claimNext(deps.node ?? null);
        if (task !== null) {
          notify(task);
          await run(task);
          continue;
        }
      } catch (error) {
        log.error({ err: error }, 'running a maintenance task failed');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deps.pollMs ?? 2000);
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeUp = null;
    }
  }

  return {
    async start() {
      for (const task of await tasks.requeueRunning()) notify(task);
      loop = claimLoop();
    },
    poke(task) {
      if (task?.cancelRequested && current?.task.id === task.id) current.controller.abort('cancel');
      wakeUp?.();
    },
    async stop() {
      stopping = true;
      current?.controller.abort('shutdown');
      wakeUp?.();
      await loop;
    },
  };
}
