import { type Compilable, type RawBuilder, sql } from 'kysely';
import type { Database } from './database.js';
import { type SearchTerm, fullTextHits, jsonText } from './dialect.js';
import { withoutNul } from './values.js';

/** A word of a search (the index's own type, handed on: the callers build terms, the dialect turns them into SQL). */
export type { SearchTerm };

/** One file or folder inside an archived image, as the index stores it. */
export interface IndexedEntry {
  path: string;
  name: string;
  kind: 'file' | 'directory';
  sizeBytes: number;
  mtime: string | null;
}

export interface FileSearchHit extends IndexedEntry {
  archiveId: string;
  archiveFilename: string;
  archiveLabel: string | null;
  rank: number;
}

export interface FileIndexRepository {
  /**
   * Archives with no index state yet (new ones, and those archived before the index existed), oldest
   * first. With `node` (a cluster node without a shared output folder), only those it holds or no
   * node holds: it reads no other node's disk.
   */
  unindexed(limit: number, node?: string | null): Promise<Array<{ id: string; path: string }>>;
  /** Drops what an archive had (a re-index starts clean). */
  clear(archiveId: string): Promise<void>;
  /** Adds a batch of entries in one transaction. */
  add(archiveId: string, entries: readonly IndexedEntry[]): Promise<void>;
  /** Records how indexing an archive ended. */
  finish(
    archiveId: string,
    outcome: { status: 'indexed'; entries: number } | { status: 'failed'; entries: number; code: string; message: string },
    at: string,
  ): Promise<void>;
  state(archiveId: string): Promise<{ status: string; entries: number; errorCode: string | null; indexedAt: string } | null>;
  /** Entries holding every term, best matches first (a name counting ten times a path). */
  search(terms: readonly SearchTerm[], limit: number): Promise<FileSearchHit[]>;
}

export function createFileIndexRepository(database: Database): FileIndexRepository {
  const db = database.kysely;
  /** A `sql` statement for a transaction's executor, compiled with the engine's own parameter syntax. */
  const statement = (query: RawBuilder<unknown>): Compilable<unknown> => ({ compile: () => query.compile(db) });
  return {
    async unindexed(limit, node = null) {
      const held = node === null ? sql`` : sql`and (a.node_id is null or a.node_id = ${node})`;
      const { rows } = await sql<{ id: string; path: string }>`
        select a.id, a.path from archives a
        where not exists (select 1 from archive_file_index i where i.archive_id = a.id) ${held}
        order by a.created_at, a.id limit ${limit}`.execute(db);
      return rows;
    },
    async clear(archiveId) {
      await database.transaction(async (tx) => {
        await tx.run(statement(sql`delete from archive_file_entries where archive_id = ${archiveId}`));
        await tx.run(statement(sql`delete from archive_file_index where archive_id = ${archiveId}`));
      });
    },
    async add(archiveId, entries) {
      await database.transaction(async (tx) => {
        for (const entry of entries) {
          await tx.run(
            statement(sql`insert into archive_file_entries (archive_id, path, name, kind, size_bytes, mtime)
              values (${archiveId}, ${withoutNul(entry.path)}, ${withoutNul(entry.name)}, ${entry.kind}, ${entry.sizeBytes}, ${entry.mtime})`),
          );
        }
      });
    },
    async finish(archiveId, outcome, at) {
      await database.transaction(async (tx) => {
        // The archive may have been deleted while its image was read: then there is nothing to record.
        await tx.run(
          statement(sql`insert into archive_file_index (archive_id, status, entries, error_code, error_message, indexed_at)
              select ${archiveId}, ${outcome.status}, ${outcome.entries}, ${outcome.status === 'failed' ? outcome.code : null},
                ${outcome.status === 'failed' ? outcome.message : null}, ${at}
              where exists (select 1 from archives where id = ${archiveId})
              on conflict (archive_id) do update set status = excluded.status, entries = excluded.entries,
                error_code = excluded.error_code, error_message = excluded.error_message, indexed_at = excluded.indexed_at`),
        );
      });
    },
    async state(archiveId) {
      const { rows } = await sql<{ status: string; entries: number; error_code: string | null; indexed_at: string }>`
        select status, entries, error_code, indexed_at from archive_file_index where archive_id = ${archiveId}`.execute(db);
      const row = rows[0];
      return row === undefined ? null : { status: row.status, entries: row.entries, errorCode: row.error_code, indexedAt: row.indexed_at };
    },
    async search(terms, limit) {
      const hits = fullTextHits(database.dialect, 'files', terms, 'hits');
      if (hits === null) return [];
      const { rows } = await sql<{
        archive_id: string;
        path: string;
        name: string;
        kind: 'file' | 'directory';
        size_bytes: number;
        mtime: string | null;
        filename: string;
        label: string | null;
        rank: number;
      }>`
        select e.archive_id, e.path, e.name, e.kind, e.size_bytes, e.mtime, a.filename,
               nullif(${jsonText(database.dialect, 'a.metadata', 'label')}, '') as label, s.rank
        from (select hits.id, hits.rank from ${hits} order by hits.rank, hits.id limit ${limit}) s
        join archive_file_entries e on e.id = s.id
        join archives a on a.id = e.archive_id
        order by s.rank, s.id`.execute(db);
      return rows.map((row) => ({
        archiveId: row.archive_id,
        path: row.path,
        name: row.name,
        kind: row.kind,
        sizeBytes: row.size_bytes,
        mtime: row.mtime,
        archiveFilename: row.filename,
        archiveLabel: row.label,
        rank: row.rank,
      }));
    },
  };
}
