import type { Selectable } from 'kysely';
import type {
  ArchiveChecksums,
  ArchiveMetadata,
  ArchiveRecord,
  ArchiveRecovery,
  ArchiveSource,
  ArchiveStatus,
  ArchiveVerificationRecord,
  VerificationOrigin,
} from '../archive/model.js';
import { type Clock, systemClock } from '../clock.js';
import type { DiscKind } from '../drives/types.js';
import { NotFoundError } from '../errors.js';
import type { JsonObject } from '../json.js';
import type { Database, SyncExecutor } from './database.js';
import type { ArchiveVerificationsTable, ArchivesTable } from './schema.js';
import { type ListResult, type SortOrder, fromJson, newId, page, timestamp, toJson } from './values.js';

/** @internal exported for its tests */
export interface CreateArchiveInput {
  jobId?: string | null;
  filename: string;
  path: string;
  sizeBytes: number;
  /** Default: now. Importing an existing image may give its file time instead. */
  createdAt?: Date;
  checksums: ArchiveChecksums;
  metadata?: Partial<ArchiveMetadata>;
  source: ArchiveSource;
  badBytes?: number;
  /** Default: ok, or damaged when badBytes > 0. */
  status?: ArchiveStatus;
}

interface ReplaceImageInput {
  sizeBytes: number;
  checksums: ArchiveChecksums;
  badBytes: number;
  status: ArchiveStatus;
}

export type ArchiveSort = 'name' | 'date' | 'size';

export interface ArchiveListFilter {
  /** Words that must all occur (case-insensitively) in the filename, label, notes or tags. */
  search?: string;
  /** created_at >= createdFrom */
  createdFrom?: Date;
  /** created_at < createdBefore */
  createdBefore?: Date;
  minSizeBytes?: number;
  maxSizeBytes?: number;
  discKinds?: readonly DiscKind[];
  statuses?: readonly ArchiveStatus[];
  /** Default: date, newest first. */
  sort?: ArchiveSort;
  order?: SortOrder;
  limit?: number;
  offset?: number;
}

export interface RecordVerificationInput {
  startedAt: Date;
  finishedAt: Date;
  ok: boolean;
  results: JsonObject;
  seconds: number;
  requestedBy?: string | null;
  /** Default: manual. */
  origin?: VerificationOrigin;
  /** The archive's status afterwards. Default: ok when ok, else damaged. */
  archiveStatus?: ArchiveStatus;
}

export interface ArchiveRepository {
  create(input: CreateArchiveInput): Promise<ArchiveRecord>;
  get(id: string): Promise<ArchiveRecord | null>;
  getByPath(path: string): Promise<ArchiveRecord | null>;
  list(filter?: ArchiveListFilter): Promise<ListResult<ArchiveRecord>>;
  /** Replaces the given metadata fields, keeps the others. NotFoundError for an unknown id. */
  updateMetadata(id: string, patch: Partial<ArchiveMetadata>): Promise<ArchiveRecord>;
  setStatus(id: string, status: ArchiveStatus): Promise<ArchiveRecord>;
  /** After a run that read an image's bad areas again: its new checksums, bad bytes and status. */
  replaceImage(id: string, input: ReplaceImageInput): Promise<ArchiveRecord>;
  /** Stores a verification run and updates the archive's last verification and status. */
  recordVerification(archiveId: string, input: RecordVerificationInput): Promise<ArchiveVerificationRecord>;
  /** `recordVerification` inside a caller's write transaction (a verification task ends with it). */
  recordVerificationWithin(tx: SyncExecutor, archiveId: string, input: RecordVerificationInput): ArchiveVerificationRecord;
  /** Newest first. */
  listVerifications(archiveId: string, options?: { limit?: number; offset?: number }): Promise<ListResult<ArchiveVerificationRecord>>;
  /**
   * Archives due for a scheduled verification: never verified, or last verified before `before`;
   * the longest unverified first. Missing images are left out (nothing to read until they return).
   */
  dueForVerification(before: Date, options: { limit: number; excludeIds?: readonly string[] }): Promise<ArchiveRecord[]>;
  /** Records (or, with null, forgets) the PAR2 recovery data of an image. */
  setRecovery(id: string, recovery: ArchiveRecovery | null): Promise<ArchiveRecord>;
  /** Removes the record and its verification history (not the image file). False when unknown. */
  delete(id: string): Promise<boolean>;
}

const EMPTY_METADATA: ArchiveMetadata = { label: '', tags: [], notes: '' };

function rowToArchive(row: Selectable<ArchivesTable>): ArchiveRecord {
  return {
    id: row.id,
    jobId: row.job_id,
    filename: row.filename,
    path: row.path,
    sizeBytes: row.size_bytes,
    createdAt: row.created_at,
    checksums: fromJson<ArchiveChecksums>(row.checksums),
    metadata: fromJson<ArchiveMetadata>(row.metadata),
    source: fromJson<ArchiveSource>(row.source),
    discKind: row.disc_kind,
    badBytes: row.bad_bytes,
    status: row.status,
    lastVerifiedAt: row.last_verified_at,
    lastVerifiedOk: row.last_verified_ok === null ? null : row.last_verified_ok === 1,
    recovery: row.recovery === null ? null : fromJson<ArchiveRecovery>(row.recovery),
  };
}

function rowToVerification(row: Selectable<ArchiveVerificationsTable>): ArchiveVerificationRecord {
  return {
    id: row.id,
    archiveId: row.archive_id,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    ok: row.ok === 1,
    results: fromJson<JsonObject>(row.results),
    seconds: row.seconds,
    requestedBy: row.requested_by,
    origin: row.origin,
  };
}

/** Search compares lower-cased text by substring, so `%`, `_` and quotes in a query are plain characters. */
/** The disc's volume label is searchable too: an entry's title is its job's name, which may differ from it. */
function searchText(filename: string, metadata: ArchiveMetadata, volumeLabel: string | null): string {
  return [filename, metadata.label, volumeLabel ?? '', metadata.notes, ...metadata.tags].join('\n').toLowerCase();
}

function searchTerms(search: string | undefined): string[] {
  return (search ?? '')
    .toLowerCase()
    .split(/\s+/)
    .filter((term) => term.length > 0);
}

const SORT_COLUMNS = { date: 'created_at', size: 'size_bytes' } as const;

export function createArchiveRepository(database: Database, options: { now?: Clock } = {}): ArchiveRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;

  const find = async (column: 'id' | 'path', value: string): Promise<ArchiveRecord | null> => {
    const row = await db.selectFrom('archives').selectAll().where(column, '=', value).executeTakeFirst();
    return row === undefined ? null : rowToArchive(row);
  };
  const notFound = (id: string) => new NotFoundError('not_found', `Archive ${id} not found`, { archive_id: id });

  const recordVerificationWithin = (tx: SyncExecutor, archiveId: string, input: RecordVerificationInput): ArchiveVerificationRecord => {
    const finishedAt = timestamp(input.finishedAt);
    const changed = tx.run(
      db
        .updateTable('archives')
        .set({
          last_verified_at: finishedAt,
          last_verified_ok: input.ok ? 1 : 0,
          status: input.archiveStatus ?? (input.ok ? 'ok' : 'damaged'),
        })
        .where('id', '=', archiveId),
    );
    if (changed === 0) throw notFound(archiveId);
    const row = tx.first(
      db
        .insertInto('archive_verifications')
        .values({
          archive_id: archiveId,
          started_at: timestamp(input.startedAt),
          finished_at: finishedAt,
          ok: input.ok ? 1 : 0,
          results: toJson(input.results),
          seconds: input.seconds,
          requested_by: input.requestedBy ?? null,
          origin: input.origin ?? 'manual',
        })
        .returningAll(),
    );
    if (row === undefined) throw notFound(archiveId);
    return rowToVerification(row);
  };

  return {
    async create(input) {
      const metadata = { ...EMPTY_METADATA, ...input.metadata };
      const badBytes = input.badBytes ?? 0;
      const row = await db
        .insertInto('archives')
        .values({
          id: newId('archive'),
          job_id: input.jobId ?? null,
          filename: input.filename,
          path: input.path,
          size_bytes: input.sizeBytes,
          created_at: timestamp(input.createdAt ?? now()),
          checksums: toJson(input.checksums),
          metadata: toJson(metadata),
          source: toJson(input.source),
          disc_kind: input.source.discKind,
          bad_bytes: badBytes,
          status: input.status ?? (badBytes > 0 ? 'damaged' : 'ok'),
          search_text: searchText(input.filename, metadata, input.source.volumeLabel),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return rowToArchive(row);
    },

    get: (id) => find('id', id),
    getByPath: (path) => find('path', path),

    async list(filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      let query = db.selectFrom('archives');
      for (const term of searchTerms(filter.search)) {
        query = query.where((eb) => eb(eb.fn<number>('instr', ['search_text', eb.val(term)]), '>', 0));
      }
      if (filter.createdFrom !== undefined) query = query.where('created_at', '>=', timestamp(filter.createdFrom));
      if (filter.createdBefore !== undefined) query = query.where('created_at', '<', timestamp(filter.createdBefore));
      if (filter.minSizeBytes !== undefined) query = query.where('size_bytes', '>=', filter.minSizeBytes);
      if (filter.maxSizeBytes !== undefined) query = query.where('size_bytes', '<=', filter.maxSizeBytes);
      if (filter.discKinds !== undefined) {
        if (filter.discKinds.length === 0) return { items: [], total: 0 };
        query = query.where('disc_kind', 'in', filter.discKinds);
      }
      if (filter.statuses !== undefined) {
        if (filter.statuses.length === 0) return { items: [], total: 0 };
        query = query.where('status', 'in', filter.statuses);
      }
      const sort = filter.sort ?? 'date';
      const order = filter.order ?? (sort === 'name' ? 'asc' : 'desc');
      const sorted =
        sort === 'name' ? query.orderBy((eb) => eb.fn('lower', ['filename']), order).orderBy('filename', order) : query.orderBy(SORT_COLUMNS[sort], order);
      const rows = await sorted.orderBy('id', order).selectAll().limit(limit).offset(offset).execute();
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToArchive), total };
    },

    async updateMetadata(id, patch) {
      return database.writeTransaction((tx) => {
        const row = tx.first(db.selectFrom('archives').select(['filename', 'metadata', 'source']).where('id', '=', id));
        if (row === undefined) throw notFound(id);
        const metadata: ArchiveMetadata = { ...fromJson<ArchiveMetadata>(row.metadata), ...definedFields(patch) };
        const updated = tx.first(
          db
            .updateTable('archives')
            .set({ metadata: toJson(metadata), search_text: searchText(row.filename, metadata, fromJson<ArchiveSource>(row.source).volumeLabel) })
            .where('id', '=', id)
            .returningAll(),
        );
        if (updated === undefined) throw notFound(id);
        return rowToArchive(updated);
      });
    },

    async setStatus(id, status) {
      const row = await db.updateTable('archives').set({ status }).where('id', '=', id).returningAll().executeTakeFirst();
      if (row === undefined) throw notFound(id);
      return rowToArchive(row);
    },

    async replaceImage(id, input) {
      const row = await db
        .updateTable('archives')
        .set({ size_bytes: input.sizeBytes, checksums: toJson(input.checksums), bad_bytes: input.badBytes, status: input.status })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      if (row === undefined) throw notFound(id);
      return rowToArchive(row);
    },

    async recordVerification(archiveId, input) {
      return database.writeTransaction((tx) => recordVerificationWithin(tx, archiveId, input));
    },

    recordVerificationWithin,

    async listVerifications(archiveId, options = {}) {
      const { limit, offset } = page(options.limit, options.offset);
      const query = db.selectFrom('archive_verifications').where('archive_id', '=', archiveId);
      const rows = await query.selectAll().orderBy('id', 'desc').limit(limit).offset(offset).execute();
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToVerification), total };
    },

    async dueForVerification(before, options) {
      let query = db
        .selectFrom('archives')
        .selectAll()
        .where('status', '!=', 'missing')
        .where((eb) => eb.or([eb('last_verified_at', 'is', null), eb('last_verified_at', '<', timestamp(before))]));
      if (options.excludeIds !== undefined && options.excludeIds.length > 0) query = query.where('id', 'not in', options.excludeIds);
      // Never verified sorts first (NULLS FIRST is SQLite's default for ascending order).
      const rows = await query.orderBy('last_verified_at', 'asc').orderBy('created_at', 'asc').orderBy('id', 'asc').limit(options.limit).execute();
      return rows.map(rowToArchive);
    },

    async setRecovery(id, recovery) {
      const row = await db
        .updateTable('archives')
        .set({ recovery: recovery === null ? null : toJson(recovery) })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirst();
      if (row === undefined) throw notFound(id);
      return rowToArchive(row);
    },

    async delete(id) {
      const result = await db.deleteFrom('archives').where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
  };
}

/** A patch's fields that are set: `{ label: undefined }` leaves the label alone. */
function definedFields(patch: Partial<ArchiveMetadata>): Partial<ArchiveMetadata> {
  return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined));
}
