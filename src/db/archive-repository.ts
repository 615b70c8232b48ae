import { type RawBuilder, type Selectable, sql } from 'kysely';
import type {
  ArchiveChecksums,
  ArchiveCondition,
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
import { NotFoundError, ValidationError } from '../errors.js';
import type { JsonObject } from '../json.js';
import type { Database, Executor } from './database.js';
import { type SearchTerm, containsText, fullTextHits, isForeignKeyViolation, jsonArrayValues, jsonText } from './dialect.js';
import type { ArchiveVerificationsTable, ArchivesTable } from './schema.js';
import { type ListResult, type SortOrder, fromJson, newId, page, timestamp, toJson, withoutNul } from './values.js';

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
  /** The cluster node whose output folder the image was written to (the job's node); default null: every node's, or the embedded service's. */
  nodeId?: string | null;
}

interface ReplaceImageInput {
  sizeBytes: number;
  checksums: ArchiveChecksums;
  badBytes: number;
  status: ArchiveStatus;
}

/** relevance: best full-text match first (bm25 on SQLite, ts_rank on PostgreSQL); only with `match`. */
export type ArchiveSort = 'name' | 'date' | 'size' | 'rating' | 'relevance';

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
  /** Full-text words (prefix match, all must occur) in the name, label, volume label, tags, notes or custom field values. */
  match?: string;
  /** The badge's conditions (see archiveCondition), any of them. */
  conditions?: readonly ArchiveCondition[];
  categoryId?: string;
  /** A normalised tag the archive must carry. */
  tag?: string;
  minRating?: number;
  /** Default: relevance with `match`, else date, newest first. */
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
  /** `get` inside a caller's write transaction (what a recorded verification is announced with). */
  getWithin(tx: Executor, id: string): Promise<ArchiveRecord | null>;
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
  recordVerificationWithin(tx: Executor, archiveId: string, input: RecordVerificationInput): Promise<ArchiveVerificationRecord>;
  /** Newest first. */
  listVerifications(archiveId: string, options?: { limit?: number; offset?: number }): Promise<ListResult<ArchiveVerificationRecord>>;
  /**
   * One change applied to several archives in one transaction: tags added and removed, category
   * and rating set (null clears). NotFoundError naming the unknown ids, and nothing changed, when any is unknown.
   */
  bulkUpdateMetadata(ids: readonly string[], change: BulkMetadataChange): Promise<number>;
  /** Archives with the same SHA-256 as one of these, by that SHA-256 (an archive is listed under its own too). */
  withSha256(sha256s: readonly string[]): Promise<Map<string, ArchiveRecord[]>>;
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

export interface BulkMetadataChange {
  addTags?: readonly string[];
  removeTags?: readonly string[];
  categoryId?: string | null;
  rating?: number | null;
}

const EMPTY_METADATA: ArchiveMetadata = { label: '', tags: [], notes: '', categoryId: null, rating: null, customFields: {} };

/** The part of the metadata kept as JSON; category and rating are columns the list filters and sorts on. */
interface StoredMetadata {
  label: string;
  tags: string[];
  notes: string;
  customFields?: Record<string, string>;
}

function storedMetadata(metadata: ArchiveMetadata): string {
  return toJson({ label: metadata.label, tags: metadata.tags, notes: metadata.notes, customFields: metadata.customFields });
}

function metadataOf(row: Pick<Selectable<ArchivesTable>, 'metadata' | 'category_id' | 'rating'>): ArchiveMetadata {
  const stored = fromJson<StoredMetadata>(row.metadata);
  return {
    label: stored.label,
    tags: stored.tags,
    notes: stored.notes,
    categoryId: row.category_id,
    rating: row.rating,
    customFields: stored.customFields ?? {},
  };
}

/**
 * The words of a full-text query, each a prefix term that must occur. Quotes, stars, colons and
 * AND/OR/NOT stay plain text (the dialect's fullTextHits never reads them as query syntax).
 * @internal exported for its tests
 */
export function matchTerms(text: string): SearchTerm[] {
  // Control characters (a NUL ends SQLite's reading of a query, PostgreSQL refuses it) separate words like spaces.
  return text
    .split(/[\s\p{Cc}]+/u)
    .filter((term) => /[\p{L}\p{N}]/u.test(term))
    .slice(0, 20)
    .map((term) => ({ text: term, prefix: true }));
}

function conditionSql(condition: ArchiveCondition): RawBuilder<unknown> {
  switch (condition) {
    case 'missing':
      return sql`archives.status = 'missing'`;
    case 'damaged':
      return sql`(archives.status = 'damaged' and (archives.bad_bytes = 0 or archives.last_verified_ok = 0))`;
    case 'completed_with_errors':
      return sql`(archives.status = 'damaged' and archives.bad_bytes > 0 and coalesce(archives.last_verified_ok, 1) = 1)`;
    case 'unverified':
      return sql`(archives.status = 'ok' and archives.last_verified_at is null)`;
    case 'ok':
      return sql`(archives.status = 'ok' and archives.last_verified_at is not null)`;
  }
}

function rowToArchive(row: Selectable<ArchivesTable>): ArchiveRecord {
  return {
    id: row.id,
    jobId: row.job_id,
    filename: row.filename,
    path: row.path,
    sizeBytes: row.size_bytes,
    createdAt: row.created_at,
    checksums: fromJson<ArchiveChecksums>(row.checksums),
    metadata: metadataOf(row),
    source: fromJson<ArchiveSource>(row.source),
    discKind: row.disc_kind,
    badBytes: row.bad_bytes,
    status: row.status,
    lastVerifiedAt: row.last_verified_at,
    lastVerifiedOk: row.last_verified_ok === null ? null : row.last_verified_ok === 1,
    recovery: row.recovery === null ? null : fromJson<ArchiveRecovery>(row.recovery),
    nodeId: row.node_id,
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
function searchText(filename: string, metadata: Pick<ArchiveMetadata, 'label' | 'notes' | 'tags'>, volumeLabel: string | null): string {
  return [filename, metadata.label, volumeLabel ?? '', metadata.notes, ...metadata.tags].join('\n').toLowerCase();
}

/** Control characters separate words like spaces (the search text's fields are joined by newlines; PostgreSQL refuses a NUL in a query). */
function searchTerms(search: string | undefined): string[] {
  return (search ?? '')
    .toLowerCase()
    .split(/[\s\p{Cc}]+/u)
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

  const recordVerificationWithin = async (tx: Executor, archiveId: string, input: RecordVerificationInput): Promise<ArchiveVerificationRecord> => {
    const finishedAt = timestamp(input.finishedAt);
    const changed = await tx.run(
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
    const row = await tx.first(
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

  const writeMetadata = (id: string, row: Pick<Selectable<ArchivesTable>, 'filename' | 'source'>, patched: ArchiveMetadata) => {
    const metadata = withoutNul(patched);
    return db
      .updateTable('archives')
      .set({
        metadata: storedMetadata(metadata),
        category_id: metadata.categoryId,
        rating: metadata.rating,
        search_text: searchText(row.filename, metadata, fromJson<ArchiveSource>(row.source).volumeLabel),
      })
      .where('id', '=', id);
  };

  return {
    async getWithin(tx, id) {
      const row = await tx.first(db.selectFrom('archives').selectAll().where('id', '=', id));
      return row === undefined ? null : rowToArchive(row);
    },
    async create(input) {
      // The volume label (and the label taken from it) is read from the disc: see withoutNul.
      const metadata = withoutNul({ ...EMPTY_METADATA, ...input.metadata });
      const source = withoutNul(input.source);
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
          metadata: storedMetadata(metadata),
          category_id: metadata.categoryId,
          rating: metadata.rating,
          source: toJson(source),
          disc_kind: source.discKind,
          bad_bytes: badBytes,
          status: input.status ?? (badBytes > 0 ? 'damaged' : 'ok'),
          search_text: searchText(input.filename, metadata, source.volumeLabel),
          node_id: input.nodeId ?? null,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return rowToArchive(row);
    },

    get: (id) => find('id', id),
    getByPath: (path) => find('path', path),

    async list(filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      const where: RawBuilder<unknown>[] = [];
      for (const term of searchTerms(filter.search)) where.push(containsText(database.dialect, sql.ref('archives.search_text'), term));
      if (filter.createdFrom !== undefined) where.push(sql`archives.created_at >= ${timestamp(filter.createdFrom)}`);
      if (filter.createdBefore !== undefined) where.push(sql`archives.created_at < ${timestamp(filter.createdBefore)}`);
      if (filter.minSizeBytes !== undefined) where.push(sql`archives.size_bytes >= ${filter.minSizeBytes}`);
      if (filter.maxSizeBytes !== undefined) where.push(sql`archives.size_bytes <= ${filter.maxSizeBytes}`);
      for (const [column, values] of [
        ['disc_kind', filter.discKinds],
        ['status', filter.statuses],
      ] as const) {
        if (values === undefined) continue;
        if (values.length === 0) return { items: [], total: 0 };
        where.push(sql`${sql.ref(`archives.${column}`)} in (${sql.join(values)})`);
      }
      if (filter.conditions !== undefined) {
        if (filter.conditions.length === 0) return { items: [], total: 0 };
        where.push(sql`(${sql.join(filter.conditions.map(conditionSql), sql` or `)})`);
      }
      if (filter.categoryId !== undefined) where.push(sql`archives.category_id = ${filter.categoryId}`);
      if (filter.minRating !== undefined) where.push(sql`archives.rating >= ${filter.minRating}`);
      if (filter.tag !== undefined)
        where.push(sql`exists (select 1 from ${jsonArrayValues(database.dialect, 'archives.metadata', 'tags', 'tag')} where value = ${filter.tag})`);
      let from = sql`archives`;
      if (filter.match !== undefined) {
        const hits = fullTextHits(database.dialect, 'archives', matchTerms(filter.match), 'hits');
        if (hits === null) return { items: [], total: 0 };
        // The index is asked once; its hits are joined to the archives they belong to.
        from = sql`${hits} join archives on archives.id = hits.id`;
      }
      const whereClause = where.length === 0 ? sql`` : sql`where ${sql.join(where, sql` and `)}`;
      const sort = filter.sort ?? (filter.match !== undefined ? 'relevance' : 'date');
      const order = filter.order ?? (sort === 'name' || sort === 'relevance' ? 'asc' : 'desc');
      const direction = sql.raw(order);
      const orderBy =
        sort === 'relevance' && filter.match !== undefined
          ? sql`hits.rank ${direction}, archives.created_at desc`
          : sort === 'name'
            ? sql`lower(archives.filename) ${direction}, archives.filename ${direction}`
            : sort === 'rating'
              ? // Unrated images come last either way.
                sql`archives.rating is null, archives.rating ${direction}, archives.created_at desc`
              : sql`${sql.ref(`archives.${SORT_COLUMNS[sort === 'relevance' ? 'date' : sort]}`)} ${direction}`;
      // Sorting carries ids only; the page's full rows (large JSON columns) are read afterwards.
      const pageIds = await sql<{ id: string }>`select archives.id as id from ${from} ${whereClause}
        order by ${orderBy}, archives.id ${direction} limit ${limit} offset ${offset}`.execute(db);
      const ids = pageIds.rows.map((row) => row.id);
      const rows = ids.length === 0 ? [] : await db.selectFrom('archives').selectAll().where('id', 'in', ids).execute();
      const byId = new Map(rows.map((row) => [row.id, row]));
      const items = ids.flatMap((id) => {
        const row = byId.get(id);
        return row === undefined ? [] : [rowToArchive(row)];
      });
      const counted = await sql<{ total: number }>`select count(*) as total from ${from} ${whereClause}`.execute(db);
      return { items, total: counted.rows[0]?.total ?? 0 };
    },

    async updateMetadata(id, patch) {
      return withKnownCategory(() =>
        database.transaction(async (tx) => {
          const row = await tx.first(db.selectFrom('archives').select(['filename', 'metadata', 'source', 'category_id', 'rating']).where('id', '=', id));
          if (row === undefined) throw notFound(id);
          const updated = await tx.first(writeMetadata(id, row, { ...metadataOf(row), ...definedFields(patch) }).returningAll());
          if (updated === undefined) throw notFound(id);
          return rowToArchive(updated);
        }),
      );
    },

    async bulkUpdateMetadata(ids, change) {
      const unique = [...new Set(ids)];
      if (unique.length === 0) return 0;
      return withKnownCategory(() =>
        database.transaction(async (tx) => {
          const rows = await tx.all(
            db.selectFrom('archives').select(['id', 'filename', 'metadata', 'source', 'category_id', 'rating']).where('id', 'in', unique),
          );
          const unknown = unique.filter((id) => !rows.some((row) => row.id === id));
          if (unknown.length > 0) throw new NotFoundError('archive_not_found', `no archive ${unknown.join(', ')}`, { archive_ids: unknown });
          const removed = new Set(change.removeTags ?? []);
          for (const row of rows) {
            const metadata = metadataOf(row);
            const tags = [...new Set([...metadata.tags.filter((tag) => !removed.has(tag)), ...(change.addTags ?? [])])];
            await tx.run(
              writeMetadata(row.id, row, {
                ...metadata,
                tags,
                ...(change.categoryId !== undefined ? { categoryId: change.categoryId } : {}),
                ...(change.rating !== undefined ? { rating: change.rating } : {}),
              }),
            );
          }
          return rows.length;
        }),
      );
    },

    async withSha256(sha256s) {
      const wanted = [...new Set(sha256s)];
      const found = new Map<string, ArchiveRecord[]>();
      if (wanted.length === 0) return found;
      const rows = await db
        .selectFrom('archives')
        .selectAll()
        .where(jsonText(database.dialect, 'checksums', 'sha256'), 'in', wanted)
        .orderBy('created_at')
        .execute();
      for (const record of rows.map(rowToArchive)) {
        const sha256 = record.checksums.sha256;
        if (sha256 !== undefined) found.set(sha256, [...(found.get(sha256) ?? []), record]);
      }
      return found;
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
      return database.transaction((tx) => recordVerificationWithin(tx, archiveId, input));
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
      // Never verified sorts first: SQLite's default for ascending order, not PostgreSQL's.
      const rows = await query.orderBy(sql`last_verified_at asc nulls first`).orderBy('created_at', 'asc').orderBy('id', 'asc').limit(options.limit).execute();
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

/** Setting a category that does not exist (or was deleted meanwhile) is the caller's mistake, not a crash. */
async function withKnownCategory<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isForeignKeyViolation(error)) {
      throw new ValidationError('unknown_category', 'no such category', { fields: ['category_id'] });
    }
    throw error;
  }
}

/** A patch's fields that are set: `{ label: undefined }` leaves the label alone. */
function definedFields(patch: Partial<ArchiveMetadata>): Partial<ArchiveMetadata> {
  return Object.fromEntries(Object.entries(patch).filter(([, value]) => value !== undefined));
}
