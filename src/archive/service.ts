import { createHash } from 'node:crypto';
import { lstat, realpath, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type Clock, systemClock } from '../clock.js';
import type { Config, HashAlgorithm } from '../config/schema.js';
import type { ArchiveListFilter, ArchiveRepository, ArchiveSort, RecordVerificationInput } from '../db/archive-repository.js';
import type { VerificationTaskRepository } from '../db/verification-task-repository.js';
import type { DiscKind, FileSystemKind } from '../drives/types.js';
import { ConflictError, DomainError, NotFoundError, UnavailableError, ValidationError, errnoCode } from '../errors.js';
import type { ReadThrottle } from '../imaging/throttle.js';
import type { JsonObject } from '../json.js';
import type { ArchiveEventBus } from './events.js';
import {
  type ArchiveCondition,
  type ArchiveMetadata,
  type ArchiveRecord,
  type ArchiveStatus,
  type ArchiveVerificationRecord,
  CUSTOM_FIELD_LIMITS,
  type VerificationOrigin,
  archiveCondition,
  cleanCustomFields,
  normaliseTag,
} from './model.js';
import { imageFileSet, isStrictlyInside, recoveryDirOf, resolvedImageRoots } from './naming.js';
import { type ArchivePlacement, READS_EVERY_IMAGE, readsImageOf } from './placement.js';
import { type VerificationTaskStatus, type VerificationTaskView, toVerificationTaskView } from './verification-task.js';

/** What re-hashing an image against its sidecars reports (the engine's verifyImage). */
interface VerificationReport {
  ok: boolean;
  results: Array<{ algorithm: string; expected: string; actual: string; ok: boolean }>;
  bytes: number;
  seconds: number;
}
/** How far a re-hash has come (the engine's progress events carry these and more). */
export interface VerificationProgress {
  bytesDone: number;
  bytesTotal: number;
  rateBps: number;
  etaSeconds: number | null;
}
interface ImageCheckOptions {
  /** Aborting stops the re-hash with UnavailableError `verification_stopped`. */
  signal?: AbortSignal;
  onProgress?: (progress: VerificationProgress) => void;
  /** Caps the reading speed (a scheduled verification). */
  throttle?: ReadThrottle | undefined;
}
type ImageVerifier = (imagePath: string, options: ImageCheckOptions) => Promise<VerificationReport>;

/** An archive as the API shows it. */
export interface ArchiveView {
  id: string;
  filename: string;
  path: string;
  size_bytes: number;
  created_at: string;
  checksums: Partial<Record<HashAlgorithm, string>>;
  metadata: {
    label: string;
    tags: string[];
    notes: string;
    category_id: string | null;
    rating: number | null;
    custom_fields: Record<string, string>;
  };
  source: {
    device_id: string | null;
    device_path: string | null;
    disc_kind: DiscKind | null;
    volume_label: string | null;
    volume_id: string | null;
    media_type: 'cd' | 'dvd' | 'bd' | null;
    file_systems: FileSystemKind[];
  };
  disc_kind: DiscKind | null;
  status: ArchiveStatus;
  /** What the badge says: the status refined by bad sectors and verification (see archiveCondition). */
  condition: ArchiveCondition;
  bad_bytes: number;
  last_verified_at: string | null;
  last_verified_ok: boolean | null;
  job_id: string | null;
  /** Ids of the other archives with the same SHA-256: identical images (list and get fill it in). */
  duplicates?: string[];
  recovery: { redundancy_percent: number; created_at: string; size_bytes: number } | null;
}

interface VerificationView {
  id: number;
  archive_id: string;
  started_at: string;
  finished_at: string;
  ok: boolean;
  seconds: number;
  requested_by: string | null;
  origin: VerificationOrigin;
  results: JsonObject;
}

export interface ArchiveListQuery {
  search?: string | undefined;
  from?: Date | undefined;
  /** Inclusive. */
  to?: Date | undefined;
  minSizeBytes?: number | undefined;
  maxSizeBytes?: number | undefined;
  discKinds?: DiscKind[] | undefined;
  statuses?: ArchiveStatus[] | undefined;
  /** Full-text words, ranked (see ArchiveListFilter.match). */
  match?: string | undefined;
  conditions?: ArchiveCondition[] | undefined;
  categoryId?: string | undefined;
  tag?: string | undefined;
  minRating?: number | undefined;
  sort?: ArchiveSort | undefined;
  order?: 'asc' | 'desc' | undefined;
  limit: number;
  offset: number;
}

/** An image file ready to be streamed: its real path and what conditional requests compare. */
export interface ArchiveFile {
  path: string;
  filename: string;
  sizeBytes: number;
  modifiedAt: Date;
  etag: string;
}

interface VerificationTaskQuery {
  archiveId?: string | undefined;
  statuses?: VerificationTaskStatus[] | undefined;
  limit: number;
  offset: number;
}

/** An archive a bulk verification could not queue, and why. */
interface RefusedVerification {
  archive_id: string;
  error: { code: string; message: string };
}

export interface ArchiveService {
  list(query: ArchiveListQuery): Promise<{ archives: ArchiveView[]; total: number; limit: number; offset: number }>;
  get(id: string): Promise<ArchiveView>;
  /** Tags are normalised (normaliseTag) and de-duplicated; ValidationError `unknown_category` for a category that does not exist. */
  updateMetadata(id: string, patch: Partial<ArchiveMetadata>): Promise<ArchiveView>;
  /** Removes the image, every sidecar and the map (only inside the output directory), then the record. */
  remove(id: string): Promise<void>;
  /**
   * Queues a background re-hash of the image (which must be there, inside the output directory)
   * and returns at once; the verification worker runs it, and its outcome lands in the history
   * with who asked (a key's owner for a key). ConflictError `verification_running` while one is
   * queued or running.
   */
  startVerification(id: string, requestedBy: string | null, origin?: VerificationOrigin): Promise<VerificationTaskView>;
  /** `startVerification` for each archive named, or every archive; those that cannot be queued are listed with why. */
  startVerifications(
    selection: { ids: readonly string[] } | { all: true },
    requestedBy: string | null,
  ): Promise<{ tasks: VerificationTaskView[]; refused: RefusedVerification[] }>;
  verificationTask(taskId: string): Promise<VerificationTaskView>;
  /** Newest first. */
  verificationTasks(query: VerificationTaskQuery): Promise<{ tasks: VerificationTaskView[]; total: number; limit: number; offset: number }>;
  /** The queued or running task of each of these archives, by archive id. */
  activeVerifications(archiveIds: readonly string[]): Promise<Map<string, VerificationTaskView>>;
  /** Cancels a queued task at once, asks a running one to stop; a finished one is returned as it is. */
  cancelVerification(taskId: string): Promise<VerificationTaskView>;
  /**
   * A verification task's work: re-hashes the image and compares it with its sidecars and with
   * the checksums recorded when the disc was read. Returns what the history records; the worker
   * stores it together with the task's end.
   */
  checkImage(id: string, options: ImageCheckOptions): Promise<RecordVerificationInput>;
  verifications(
    id: string,
    page: { limit: number; offset: number },
  ): Promise<{ verifications: VerificationView[]; total: number; limit: number; offset: number }>;
  openFile(id: string): Promise<ArchiveFile>;
  /**
   * The record and its image's real path, inside the output directory (NotFoundError
   * `archive_file_missing`, and the record marked missing, when the image is gone).
   */
  locateImage(id: string): Promise<{ record: ArchiveRecord; path: string }>;
}

/** Things worth a line in the application log. */
type ArchiveEventSink = (level: 'info' | 'warning', message: string, details: JsonObject) => void;

export interface ArchiveServiceDeps {
  config: Config;
  archives: ArchiveRepository;
  tasks: VerificationTaskRepository;
  verifyImage: ImageVerifier;
  /** Told about queued and cancelled verification tasks (the worker and live streams listen). */
  events?: ArchiveEventBus;
  onEvent?: ArchiveEventSink;
  now?: Clock;
  /** Which images this process reads itself (default: every one, as the embedded service does). */
  placement?: ArchivePlacement;
}

export function toArchiveView(record: ArchiveRecord): ArchiveView {
  return {
    id: record.id,
    filename: record.filename,
    path: record.path,
    size_bytes: record.sizeBytes,
    created_at: record.createdAt,
    checksums: record.checksums,
    metadata: {
      label: record.metadata.label,
      tags: [...record.metadata.tags],
      notes: record.metadata.notes,
      category_id: record.metadata.categoryId,
      rating: record.metadata.rating,
      custom_fields: { ...record.metadata.customFields },
    },
    source: {
      device_id: record.source.deviceId,
      device_path: record.source.devicePath,
      disc_kind: record.source.discKind,
      volume_label: record.source.volumeLabel,
      volume_id: record.source.volumeId,
      media_type: record.source.mediaType,
      file_systems: [...record.source.fileSystems],
    },
    disc_kind: record.discKind,
    status: record.status,
    condition: archiveCondition(record),
    bad_bytes: record.badBytes,
    last_verified_at: record.lastVerifiedAt,
    last_verified_ok: record.lastVerifiedOk,
    job_id: record.jobId,
    recovery:
      record.recovery === null
        ? null
        : { redundancy_percent: record.recovery.redundancyPercent, created_at: record.recovery.createdAt, size_bytes: record.recovery.sizeBytes },
  };
}

export function checkedCustomFields(fields: Readonly<Record<string, string>>): Record<string, string> {
  const cleaned = cleanCustomFields(fields);
  if (cleaned === null) {
    const { count, keyLength, valueLength } = CUSTOM_FIELD_LIMITS;
    throw new ValidationError(
      'validation_failed',
      `custom fields: at most ${count}, each with a distinct key of 1 to ${keyLength} characters and a value of at most ${valueLength}, no control characters`,
      { fields: ['custom_fields'] },
    );
  }
  return cleaned;
}

export function normaliseTags(tags: readonly string[]): string[] {
  return [...new Set(tags.map(normaliseTag).filter((tag) => tag !== ''))];
}

function toVerificationView(record: ArchiveVerificationRecord): VerificationView {
  return {
    id: record.id,
    archive_id: record.archiveId,
    started_at: record.startedAt,
    finished_at: record.finishedAt,
    ok: record.ok,
    seconds: record.seconds,
    requested_by: record.requestedBy,
    origin: record.origin,
    results: record.results,
  };
}

export function createArchiveService(deps: ArchiveServiceDeps): ArchiveService {
  const { config, archives } = deps;
  const now = deps.now ?? systemClock;
  const onEvent: ArchiveEventSink = deps.onEvent ?? (() => undefined);
  const { tasks } = deps;
  const placement = deps.placement ?? READS_EVERY_IMAGE;
  /** Bulk verification of every archive reads the catalogue in pages of this many. */
  const ALL_PAGE = 500;

  async function find(id: string): Promise<ArchiveRecord> {
    const record = await archives.get(id);
    if (!record) throw new NotFoundError('archive_not_found', `no archive ${id}`, { archive_id: id });
    return record;
  }

  function outsideError(record: ArchiveRecord): ConflictError {
    return new ConflictError(
      'archive_outside_output_dir',
      `the file of ${record.id} is not inside the output directory ${config.storage.output_dir}; disk2iso only touches files there`,
      { archive_id: record.id },
    );
  }

  function onOtherNode(record: ArchiveRecord): UnavailableError {
    return new UnavailableError('archive_on_other_node', `the image of ${record.id} lies on node ${record.nodeId ?? ''}, whose disk this node cannot read`, {
      archive_id: record.id,
      node: record.nodeId,
    });
  }

  async function missing(record: ArchiveRecord): Promise<NotFoundError> {
    if (record.status !== 'missing') await archives.setStatus(record.id, 'missing');
    onEvent('warning', `image of ${record.id} is missing: ${record.path}`, { archive_id: record.id });
    return new NotFoundError('archive_file_missing', `the image file of ${record.id} is missing`, { archive_id: record.id });
  }

  /**
   * The directory the record's files live in, resolved through symlinks, when it lies inside one of
   * the (equally resolved) image roots; a catalogue entry can never make us touch anything else.
   */
  async function confinedDir(record: ArchiveRecord): Promise<string> {
    // Another node's image is not in this node's folder: looking there would find nothing and mark it missing.
    if (!readsImageOf(placement, record.nodeId)) throw onOtherNode(record);
    const roots = await resolvedImageRoots(config);
    if (roots.length === 0) {
      // No output directory yet: an image the CLI wrote elsewhere is still there, just not ours to touch.
      if (!isStrictlyInside(config.storage.output_dir, record.path)) throw outsideError(record);
      throw await missing(record);
    }
    let parent: string;
    try {
      parent = await realpath(dirname(record.path));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') throw await missing(record);
      throw error;
    }
    if (!roots.some((root) => parent === root || isStrictlyInside(root, parent))) throw outsideError(record);
    return parent;
  }

  /** The image's real path, refusing a symlink that leads out of the image roots. */
  async function confinedImage(record: ArchiveRecord): Promise<string> {
    const dir = await confinedDir(record);
    let real: string;
    try {
      real = await realpath(join(dir, basename(record.path)));
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') throw await missing(record);
      throw error;
    }
    if (!(await resolvedImageRoots(config)).some((root) => isStrictlyInside(root, real))) throw outsideError(record);
    return real;
  }

  async function withDuplicates(records: readonly ArchiveRecord[]): Promise<ArchiveView[]> {
    const same = await archives.withSha256(records.flatMap((record) => (record.checksums.sha256 === undefined ? [] : [record.checksums.sha256])));
    return records.map((record) => {
      const sha256 = record.checksums.sha256;
      const others = sha256 === undefined ? [] : (same.get(sha256) ?? []).filter((other) => other.id !== record.id);
      return { ...toArchiveView(record), duplicates: others.map((other) => other.id) };
    });
  }

  async function findTask(taskId: string) {
    const task = await tasks.get(taskId);
    if (task === null) throw new NotFoundError('verification_task_not_found', `no verification task ${taskId}`, { task_id: taskId });
    return task;
  }

  /** The checks that need no reading of the image happen here, so a request that cannot work is refused at once. */
  async function queue(id: string, requestedBy: string | null, origin: VerificationOrigin = 'manual'): Promise<VerificationTaskView> {
    const record = await find(id);
    // Asked before the file is looked at: an image being read may sit on a disk that hangs.
    if ((await tasks.active([id])).length > 0)
      throw new ConflictError('verification_running', `${id} is already being verified or waiting to be`, { archive_id: id });
    let sizeBytes = record.sizeBytes;
    // Another node's image is looked at by that node, which claims the task (ownImagesOf); its recorded size stands until then.
    if (readsImageOf(placement, record.nodeId)) {
      const image = await confinedImage(record);
      try {
        sizeBytes = (await stat(image)).size;
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') throw await missing(record);
        throw error;
      }
    }
    const task = await tasks.enqueue({ archiveId: id, bytesTotal: sizeBytes, requestedBy, origin });
    deps.events?.emit('archive.verification', { task });
    return toVerificationTaskView(task);
  }

  return {
    async list(query) {
      const filter: ArchiveListFilter = { limit: query.limit, offset: query.offset };
      if (query.search !== undefined) filter.search = query.search;
      if (query.from !== undefined) filter.createdFrom = query.from;
      if (query.to !== undefined) filter.createdBefore = new Date(query.to.getTime() + 1);
      if (query.minSizeBytes !== undefined) filter.minSizeBytes = query.minSizeBytes;
      if (query.maxSizeBytes !== undefined) filter.maxSizeBytes = query.maxSizeBytes;
      if (query.discKinds !== undefined) filter.discKinds = query.discKinds;
      if (query.statuses !== undefined) filter.statuses = query.statuses;
      if (query.match !== undefined) filter.match = query.match;
      if (query.conditions !== undefined) filter.conditions = query.conditions;
      if (query.categoryId !== undefined) filter.categoryId = query.categoryId;
      if (query.tag !== undefined) filter.tag = normaliseTag(query.tag);
      if (query.minRating !== undefined) filter.minRating = query.minRating;
      if (query.sort !== undefined) filter.sort = query.sort;
      if (query.order !== undefined) filter.order = query.order;
      const { items, total } = await archives.list(filter);
      return { archives: await withDuplicates(items), total, limit: query.limit, offset: query.offset };
    },

    async get(id) {
      const [view] = await withDuplicates([await find(id)]);
      if (view === undefined) throw new NotFoundError('archive_not_found', `no archive ${id}`, { archive_id: id });
      return view;
    },

    async updateMetadata(id, patch) {
      await find(id);
      const cleaned: Partial<ArchiveMetadata> = { ...patch };
      if (patch.label !== undefined) cleaned.label = patch.label.trim();
      if (patch.tags !== undefined) cleaned.tags = normaliseTags(patch.tags);
      if (patch.customFields !== undefined) cleaned.customFields = checkedCustomFields(patch.customFields);
      const [view] = await withDuplicates([await archives.updateMetadata(id, cleaned)]);
      if (view === undefined) throw new NotFoundError('archive_not_found', `no archive ${id}`, { archive_id: id });
      return view;
    },

    async remove(id) {
      const record = await find(id);
      // A queued task goes with the record; a running one is reading the file.
      if ((await tasks.active([id])).some((task) => task.status === 'running')) {
        throw new ConflictError('archive_busy', `${id} is being verified; cancel that or delete it afterwards`, { archive_id: id });
      }
      let dir: string | null;
      try {
        dir = await confinedDir(record);
      } catch (error) {
        // A record whose folder is gone has no files left to remove; the record itself still goes.
        if (error instanceof NotFoundError) dir = null;
        else throw error;
      }
      const removed: string[] = [];
      if (dir !== null) {
        for (const file of imageFileSet(join(dir, basename(record.path)))) {
          try {
            await lstat(file);
          } catch (error) {
            if (errnoCode(error) === 'ENOENT') continue;
            throw error;
          }
          // rm on a symlink removes the link itself, never its target.
          await rm(file, { force: true });
          removed.push(basename(file));
        }
        const recovery = recoveryDirOf(join(dir, basename(record.path)));
        const info = await lstat(recovery).catch((error: unknown) => {
          if (errnoCode(error) === 'ENOENT') return null;
          throw error;
        });
        // A symlink in its place is removed itself; rm never follows it.
        if (info !== null) {
          await rm(recovery, { recursive: info.isDirectory(), force: true });
          removed.push(basename(recovery));
        }
      }
      await archives.delete(id);
      onEvent('info', `archive ${id} deleted (${record.filename})`, { archive_id: id, removed_files: removed });
    },

    startVerification: queue,

    async startVerifications(selection, requestedBy) {
      const queued: VerificationTaskView[] = [];
      const refused: RefusedVerification[] = [];
      const add = async (id: string): Promise<void> => {
        try {
          queued.push(await queue(id, requestedBy, 'manual'));
        } catch (error) {
          if (!(error instanceof DomainError)) throw error;
          refused.push({ archive_id: id, error: { code: error.code, message: error.message } });
        }
      };
      if ('ids' in selection) {
        for (const id of new Set(selection.ids)) await add(id);
        return { tasks: queued, refused };
      }
      // Ids first, then queueing: a page read while entries are added would shift under the offset.
      const ids: string[] = [];
      for (let offset = 0; ; offset += ALL_PAGE) {
        const { items } = await archives.list({ sort: 'date', order: 'asc', limit: ALL_PAGE, offset });
        ids.push(...items.map((item) => item.id));
        if (items.length < ALL_PAGE) break;
      }
      for (const id of ids) await add(id);
      return { tasks: queued, refused };
    },

    async verificationTask(taskId) {
      return toVerificationTaskView(await findTask(taskId));
    },

    async verificationTasks(query) {
      const { items, total } = await tasks.list({
        ...(query.archiveId === undefined ? {} : { archiveId: query.archiveId }),
        ...(query.statuses === undefined ? {} : { statuses: query.statuses }),
        limit: query.limit,
        offset: query.offset,
      });
      return { tasks: items.map(toVerificationTaskView), total, limit: query.limit, offset: query.offset };
    },

    async activeVerifications(archiveIds) {
      return new Map((await tasks.active(archiveIds)).map((task) => [task.archiveId, toVerificationTaskView(task)]));
    },

    async cancelVerification(taskId) {
      const before = await findTask(taskId);
      const task = await tasks.requestCancel(taskId);
      if (task.status !== before.status || task.cancelRequested !== before.cancelRequested) deps.events?.emit('archive.verification', { task });
      return toVerificationTaskView(task);
    },

    async checkImage(id, options) {
      const record = await find(id);
      const image = await confinedImage(record);
      const startedAt = now();
      let report: VerificationReport;
      try {
        report = await deps.verifyImage(image, options);
      } catch (error) {
        // Gone between the check above and the open: the catalogue says so from now on.
        if (error instanceof NotFoundError && error.code === 'image_not_found') throw await missing(record);
        throw error;
      }
      const finishedAt = now();
      // The sidecars sit next to the image and could have been rewritten with it; the catalogue
      // keeps the checksums computed while reading the disc, so both must agree.
      const algorithms = report.results.map((result) => {
        const catalogued = record.checksums[result.algorithm as HashAlgorithm];
        const catalogueOk = catalogued === undefined || catalogued === result.actual;
        return {
          algorithm: result.algorithm,
          expected: result.expected,
          actual: result.actual,
          sidecar_ok: result.ok,
          catalogue: catalogued ?? null,
          ok: result.ok && catalogueOk,
        };
      });
      const ok = report.ok && algorithms.every((result) => result.ok);
      onEvent(ok ? 'info' : 'warning', `archive ${id} verification ${ok ? 'passed' : 'FAILED'}`, { archive_id: id });
      return {
        startedAt,
        finishedAt,
        ok,
        results: { source: 'api', bytes: report.bytes, algorithms },
        seconds: report.seconds,
        archiveStatus: ok && record.badBytes === 0 ? 'ok' : 'damaged',
      };
    },

    async verifications(id, page) {
      await find(id);
      const { items, total } = await archives.listVerifications(id, page);
      return { verifications: items.map(toVerificationView), total, limit: page.limit, offset: page.offset };
    },

    async locateImage(id) {
      const record = await find(id);
      const path = await confinedImage(record);
      try {
        if (!(await stat(path)).isFile()) throw await missing(record);
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') throw await missing(record);
        throw error;
      }
      return { record, path };
    },

    async openFile(id) {
      const record = await find(id);
      const path = await confinedImage(record);
      let info;
      try {
        info = await stat(path);
      } catch (error) {
        if (errnoCode(error) === 'ENOENT') throw await missing(record);
        throw error;
      }
      if (!info.isFile()) throw await missing(record);
      const tag = createHash('sha1').update(`${record.id}:${info.size}:${info.mtimeMs}:${info.ino}`).digest('hex').slice(0, 27);
      return { path, filename: record.filename, sizeBytes: info.size, modifiedAt: info.mtime, etag: `"${tag}"` };
    },
  };
}
