import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/**
 * File search over millions of entries: a query word of two letters (a prefix query `"ka"*`) had no
 * prefix index (only three-letter prefixes were indexed), so FTS5 merged the doclists of every
 * term starting with those letters, and bm25 did that again to count the rows of each phrase:
 * p99 about 130 to 250 ms over 2 million entries. Indexing two-letter prefixes too reads one
 * doclist instead (13 % more index). The table keeps its name, so the triggers of 0014 keep
 * feeding it; `rebuild` fills it again from archive_file_entries. Frozen like every released migration.
 */
export const fileSearchPrefixesMigration: Migration = {
  async up(db: Kysely<unknown>) {
    // PostgreSQL's index (0014) finds prefixes of any length with its GIN index: nothing to change.
    if (sqlDialect(db) === 'postgres') return;
    await sql`drop table archive_file_search`.execute(db);
    await sql`create virtual table archive_file_search using fts5(
      name, path, content = 'archive_file_entries', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2', prefix = '2 3'
    )`.execute(db);
    await sql`insert into archive_file_search (archive_file_search) values ('rebuild')`.execute(db);
  },
};
