import { randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import type { ArchiveRepository } from '../db/archive-repository.js';
import type { MaintenanceTaskRepository } from '../db/maintenance-task-repository.js';
import { ConflictError, NotFoundError, UnavailableError, ValidationError, errnoCode } from '../errors.js';
import type { MaintenanceTaskRecord, MaintenanceTaskView } from './maintenance-task.js';
import { toMaintenanceTaskView } from './maintenance-task.js';
import type { MaintenanceHandler } from './maintenance-worker.js';
import { recoveryDirOf } from './naming.js';
import { runPar2 } from './par2.js';
import type { ArchiveService } from './service.js';

export const REDUNDANCY = { minimum: 1, maximum: 100 } as const;

export interface RecoveryServiceDeps {
  archives: Pick<ArchiveRepository, 'get' | 'setRecovery'>;
  service: Pick<ArchiveService, 'locateImage' | 'startVerification' | 'activeVerifications'>;
  tasks: MaintenanceTaskRepository;
  /** Told of a task just queued or asked to stop (the maintenance worker wakes up). */
  onQueued: (task: MaintenanceTaskRecord) => void;
  now?: Clock;
}

export interface RecoveryService {
  /** Queues the creation of PAR2 data with this redundancy (percent), replacing any the image has. */
  create(archiveId: string, redundancyPercent: number, requestedBy: string | null): Promise<MaintenanceTaskView>;
  /** Queues a repair from the image's PAR2 data, followed by a verification. NotFoundError `recovery_not_found` without data. */
  repair(archiveId: string, requestedBy: string | null): Promise<MaintenanceTaskView>;
  /** A maintenance task of any kind (recovery work or an adoption), as are `tasks` and `cancel`. */
  task(id: string): Promise<MaintenanceTaskView>;
  tasks(query: { archiveId?: string; limit: number; offset: number }): Promise<{ tasks: MaintenanceTaskView[]; total: number; limit: number; offset: number }>;
  cancel(id: string): Promise<MaintenanceTaskView>;
  handlers: { par2_create: MaintenanceHandler; par2_repair: MaintenanceHandler };
}

/** The main PAR2 file inside an image's recovery folder; the volume files sit beside it. */
const par2Index = (dir: string, imagePath: string) => join(dir, `${basename(imagePath)}.par2`);

async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) if (entry.isFile()) total += (await stat(join(dir, entry.name))).size;
  return total;
}

/** par2 renames the damaged file to NAME.1 (or .2, …) before writing the repaired one; these are them. */
async function backupsOf(imagePath: string): Promise<Set<string>> {
  const name = basename(imagePath);
  const pattern = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d+$`);
  return new Set((await readdir(dirname(imagePath))).filter((entry) => pattern.test(entry)));
}

/**
 * PAR2 recovery data per image, made and used by Debian's par2 in the background as maintenance
 * tasks. The data lives in a folder beside the image (recoveryDirOf), which is always derived from
 * the image's confined path, never read from the catalogue, and goes with the image when it is
 * deleted. A repair is followed by a verification of origin `repair`, which records the outcome in
 * the history and sets the archive's status.
 */
export function createRecoveryService(deps: RecoveryServiceDeps): RecoveryService {
  const { tasks, service } = deps;
  const now = deps.now ?? systemClock;

  async function findTask(id: string) {
    const task = await tasks.get(id);
    if (task === null) throw new NotFoundError('maintenance_task_not_found', `no maintenance task ${id}`, { task_id: id });
    return task;
  }

  /** A repair rewrites the image: not while a verification reads it. */
  async function notVerifying(archiveId: string): Promise<void> {
    if ((await service.activeVerifications([archiveId])).size > 0)
      throw new ConflictError('archive_busy', `${archiveId} is being verified; wait for that or cancel it`, { archive_id: archiveId });
  }

  async function queue(kind: 'par2_create' | 'par2_repair', archiveId: string, params: { redundancy_percent?: number }, requestedBy: string | null) {
    const task = await tasks.enqueue({ kind, archiveId, params, requestedBy });
    deps.onQueued(task);
    return toMaintenanceTaskView(task);
  }

  const createHandler: MaintenanceHandler = async (task, context) => {
    const archiveId = task.archiveId ?? '';
    const redundancy = Number(task.params.redundancy_percent);
    const { path } = await service.locateImage(archiveId);
    const dir = recoveryDirOf(path);
    // Written aside and renamed into place: a stop halfway leaves the previous data whole.
    const staging = `${dir}.tmp-${randomBytes(6).toString('hex')}`;
    await mkdir(staging, { mode: 0o750 });
    try {
      const run = await runPar2(['create', `-r${redundancy}`, '-n1', `-B${dirname(path)}`, '--', par2Index(staging, path), path], {
        signal: context.signal,
        onPercent: context.progress,
      });
      if (run.code !== 0)
        throw new UnavailableError('recovery_failed', `par2 create ended with code ${run.code}: ${run.tail.split('\n').at(-1) ?? ''}`, {
          archive_id: archiveId,
        });
      await rm(dir, { recursive: true, force: true });
      await rename(staging, dir);
    } catch (error) {
      await rm(staging, { recursive: true, force: true });
      throw error;
    }
    const sizeBytes = await folderBytes(dir);
    await deps.archives.setRecovery(archiveId, { redundancyPercent: redundancy, createdAt: now().toISOString(), sizeBytes });
    return { redundancy_percent: redundancy, size_bytes: sizeBytes };
  };

  const repairHandler: MaintenanceHandler = async (task, context) => {
    const archiveId = task.archiveId ?? '';
    const { path } = await service.locateImage(archiveId);
    const dir = recoveryDirOf(path);
    const info = await lstat(dir).catch((error: unknown) => {
      if (errnoCode(error) === 'ENOENT') return null;
      throw error;
    });
    if (info === null || !info.isDirectory())
      throw new NotFoundError('recovery_not_found', `the recovery data of ${archiveId} is gone`, { archive_id: archiveId });
    await notVerifying(archiveId);
    const before = await backupsOf(path);
    const run = await runPar2(['repair', `-B${dirname(path)}`, '--', par2Index(dir, path), path], { signal: context.signal, onPercent: context.progress });
    // The damaged copy par2 set aside is of no use once the image is whole, and as large as the image.
    for (const backup of await backupsOf(path)) if (!before.has(backup)) await rm(join(dirname(path), backup), { force: true });
    if (run.code !== 0) {
      const why = run.code === 2 ? 'too much of the image is damaged for its recovery data' : `par2 repair ended with code ${run.code}`;
      throw new UnavailableError('recovery_failed', `${why}: ${run.tail.split('\n').at(-1) ?? ''}`, { archive_id: archiveId });
    }
    const verification = await service.startVerification(archiveId, task.requestedBy, 'repair');
    return { repaired: true, verification_task_id: verification.id };
  };

  return {
    async create(archiveId, redundancyPercent, requestedBy) {
      if (!Number.isInteger(redundancyPercent) || redundancyPercent < REDUNDANCY.minimum || redundancyPercent > REDUNDANCY.maximum)
        throw new ValidationError('validation_failed', `redundancy must be a whole percent from ${REDUNDANCY.minimum} to ${REDUNDANCY.maximum}`, {
          redundancy_percent: redundancyPercent,
        });
      await service.locateImage(archiveId);
      return queue('par2_create', archiveId, { redundancy_percent: redundancyPercent }, requestedBy);
    },

    async repair(archiveId, requestedBy) {
      const { record } = await service.locateImage(archiveId);
      await notVerifying(archiveId);
      if (record.recovery === null)
        throw new NotFoundError('recovery_not_found', `${archiveId} has no recovery data; create it first`, { archive_id: archiveId });
      return queue('par2_repair', archiveId, {}, requestedBy);
    },

    async task(id) {
      return toMaintenanceTaskView(await findTask(id));
    },

    async tasks(query) {
      const { items, total } = await tasks.list({
        ...(query.archiveId === undefined ? {} : { archiveId: query.archiveId }),
        limit: query.limit,
        offset: query.offset,
      });
      return { tasks: items.map(toMaintenanceTaskView), total, limit: query.limit, offset: query.offset };
    },

    async cancel(id) {
      await findTask(id);
      const task = await tasks.requestCancel(id);
      deps.onQueued(task);
      return toMaintenanceTaskView(task);
    },

    handlers: { par2_create: createHandler, par2_repair: repairHandler },
  };
}
