import { type Kysely, type Migration, sql } from 'kysely';

/**
 * The file-name index of archived images: one row per file or folder inside an image, searched
 * through an FTS5 table over its name and path (external content, so the text is stored once),
 * and one state row per archive saying whether (and how) its image was indexed. Rows of a deleted
 * archive go with it. Frozen like every released migration.
 */
export const fileIndexMigration: Migration = {
  async up(db: Kysely<unknown>) {
    await sql`create table archive_file_entries (
      id integer primary key,
      archive_id text not null references archives(id) on delete cascade,
      path text not null,
      name text not null,
      kind text not null check (kind in ('file', 'directory')),
      size_bytes integer not null,
      mtime text
    )`.execute(db);
    await sql`create index archive_file_entries_archive on archive_file_entries (archive_id)`.execute(db);
    await sql`create virtual table archive_file_search using fts5(
      name, path, content = 'archive_file_entries', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2', prefix = '3'
    )`.execute(db);
    await sql`create trigger archive_file_entries_added after insert on archive_file_entries begin
      insert into archive_file_search (rowid, name, path) values (new.id, new.name, new.path);
    end`.execute(db);
    await sql`create trigger archive_file_entries_removed after delete on archive_file_entries begin
      insert into archive_file_search (archive_file_search, rowid, name, path) values ('delete', old.id, old.name, old.path);
    end`.execute(db);
    await sql`create table archive_file_index (
      archive_id text primary key references archives(id) on delete cascade,
      status text not null check (status in ('indexed', 'failed')),
      entries integer not null,
      error_code text,
      error_message text,
      indexed_at text not null
    )`.execute(db);
  },
};
