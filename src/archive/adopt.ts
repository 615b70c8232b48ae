import { lstat, readdir, realpath } from 'node:fs/promises';
import { basename, isAbsolute, join } from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import type { Config, HashAlgorithm } from '../config/schema.js';
import type { ArchiveRepository } from '../db/archive-repository.js';
import type { MaintenanceTaskRepository } from '../db/maintenance-task-repository.js';
import { NotFoundError, UnavailableError, ValidationError, errnoCode, errorMessage } from '../errors.js';
import { writeChecksumSidecars } from '../imaging/sidecars.js';
import { hashWholeFile, readSidecar } from '../imaging/verify.js';
import type { JsonObject } from '../json.js';
import { probeMedia } from '../media/probe.js';
import { type MaintenanceTaskRecord, type MaintenanceTaskView, toMaintenanceTaskView } from './maintenance-task.js';
import type { MaintenanceHandler } from './maintenance-worker.js';
import { isStrictlyInside, resolvedImageRoots } from './naming.js';

export interface AdoptionDeps {
  config: Config;
  /** The catalogue imaging writes to: an adopted image is created through the same path as an imaged one. */
  archives: Pick<ArchiveRepository, 'create' | 'getByPath' | 'recordVerification'>;
  tasks: MaintenanceTaskRepository;
  onQueued: (task: MaintenanceTaskRecord) => void;
  now?: Clock;
}

export interface AdoptionService {
  /** Queues the adoption of the image files in `folder` (not its subfolders). */
  start(folder: string, requestedBy: string | null): Promise<MaintenanceTaskView>;
  handler: MaintenanceHandler;
}

/** What an adoption hashes; the same pair imaging writes by default. */
const ALGORITHMS: readonly HashAlgorithm[] = ['md5', 'sha256'];
const IMAGE_NAME = /\.iso$/i;
/** A folder holding more entries than this is refused rather than read into memory. */
const MAX_ENTRIES = 100_000;

/**
 * Adopting existing images: an admin names a folder inside the output directory or one of
 * archive.adopt_roots; every `.iso` file directly in it that is a regular file (a symlink is never
 * followed) and not archived yet is hashed in the background, compared with the sidecars beside it
 * when there are any (missing ones are written, so later verifications have them), described from
 * its volume descriptors and added to the archive with a verification entry of origin `adoption`.
 */
export function createAdoptionService(deps: AdoptionDeps): AdoptionService {
  const { config, archives, tasks } = deps;
  const now = deps.now ?? systemClock;

  /** The folder's real path, when it lies in (or is) an allowed root. */
  async function confinedFolder(folder: string): Promise<string> {
    if (!isAbsolute(folder) || folder.includes('\0')) throw new ValidationError('validation_failed', 'the folder must be an absolute path', { folder });
    let real: string;
    try {
      real = await realpath(folder);
    } catch (error) {
      if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ENOTDIR')
        throw new NotFoundError('adopt_folder_not_found', `there is no folder ${folder}`, { folder });
      throw error;
    }
    const roots = await resolvedImageRoots(config);
    if (!roots.some((root) => real === root || isStrictlyInside(root, real)))
      throw new ValidationError('adopt_path_refused', `${folder} is not inside the output directory or a folder allowed for adoption (archive.adopt_roots)`, {
        folder,
      });
    if (!(await lstat(real)).isDirectory()) throw new NotFoundError('adopt_folder_not_found', `${folder} is not a folder`, { folder });
    return real;
  }

  async function adoptOne(path: string, sizeBytes: number, signal: AbortSignal, onPosition: (position: number) => void): Promise<JsonObject> {
    const started = now();
    const digests = await hashWholeFile(path, sizeBytes, ALGORITHMS, { signal, onPosition });
    if (digests === null) throw new UnavailableError('cancelled', 'the adoption was stopped');
    const checks: JsonObject[] = [];
    let ok = true;
    for (const algorithm of ALGORITHMS) {
      const sidecar = `${path}.${algorithm}`;
      const info = await lstat(sidecar).catch(() => null);
      const expected = info?.isFile() === true ? await readSidecar(sidecar, algorithm).catch(() => 'unreadable') : undefined;
      const actual = digests[algorithm] ?? '';
      if (expected !== undefined) {
        checks.push({ algorithm, expected, actual, sidecar_ok: expected === actual, ok: expected === actual });
        if (expected !== actual) ok = false;
      } else if (info === null) {
        await writeChecksumSidecars(path, [algorithm], digests);
      }
    }
    let media = null;
    try {
      media = await probeMedia(path);
    } catch {
      // Not readable as a disc image: adopted all the same, without a description.
    }
    const record = await archives.create({
      filename: basename(path),
      path,
      sizeBytes,
      createdAt: media?.createdAt ? new Date(media.createdAt) : now(),
      checksums: digests,
      metadata: { label: media?.volumeLabel ?? basename(path).replace(IMAGE_NAME, ''), tags: [], notes: '' },
      source: {
        deviceId: null,
        devicePath: null,
        discKind: media?.kind ?? null,
        volumeLabel: media?.volumeLabel ?? null,
        volumeId: media?.volumeId ?? null,
        mediaType: null,
        fileSystems: media?.fileSystems ?? [],
      },
      status: ok ? 'ok' : 'damaged',
    });
    const finishedAt = now();
    await archives.recordVerification(record.id, {
      startedAt: started,
      finishedAt,
      ok,
      results: { source: 'adoption', bytes: sizeBytes, algorithms: checks },
      seconds: (finishedAt.getTime() - started.getTime()) / 1000,
      origin: 'adoption',
      archiveStatus: ok ? 'ok' : 'damaged',
    });
    return { file: basename(path), archive_id: record.id, ok, label: media?.volumeLabel ?? null };
  }

  const handler: MaintenanceHandler = async (task, context) => {
    const folder = await confinedFolder(String(task.params.folder));
    const entries = await readdir(folder, { withFileTypes: true });
    if (entries.length > MAX_ENTRIES) throw new ValidationError('validation_failed', `${folder} holds more than ${MAX_ENTRIES} entries`, { folder });
    const candidates: Array<{ path: string; size: number }> = [];
    const skipped: JsonObject[] = [];
    for (const entry of entries.filter((candidate) => IMAGE_NAME.test(candidate.name)).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(folder, entry.name);
      const info = await lstat(path);
      if (!info.isFile()) skipped.push({ file: entry.name, reason: info.isSymbolicLink() ? 'symlink' : 'not a file' });
      else if ((await archives.getByPath(path)) !== null) skipped.push({ file: entry.name, reason: 'already archived' });
      else candidates.push({ path, size: info.size });
    }
    const total = candidates.reduce((sum, candidate) => sum + candidate.size, 0);
    let done = 0;
    const adopted: JsonObject[] = [];
    const failed: JsonObject[] = [];
    for (const candidate of candidates) {
      if (context.signal.aborted) break;
      try {
        // Checked again right before: another adoption may have taken it meanwhile.
        if ((await archives.getByPath(candidate.path)) !== null) skipped.push({ file: basename(candidate.path), reason: 'already archived' });
        else
          adopted.push(
            await adoptOne(candidate.path, candidate.size, context.signal, (position) =>
              context.progress(total === 0 ? 100 : ((done + position) / total) * 100),
            ),
          );
      } catch (error) {
        if (context.signal.aborted) throw error;
        failed.push({ file: basename(candidate.path), error: errorMessage(error) });
      }
      done += candidate.size;
      context.progress(total === 0 ? 100 : (done / total) * 100);
    }
    if (context.signal.aborted) throw new UnavailableError('cancelled', 'the adoption was stopped');
    return { folder, adopted, skipped, failed };
  };

  return {
    async start(folder, requestedBy) {
      const real = await confinedFolder(folder);
      const task = await tasks.enqueue({ kind: 'adopt', archiveId: null, params: { folder: real }, requestedBy });
      deps.onQueued(task);
      return toMaintenanceTaskView(task);
    },
    handler,
  };
}
