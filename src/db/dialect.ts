import { type Kysely, PostgresAdapter, type RawBuilder, sql } from 'kysely';

/**
 * The SQL that differs between the embedded database (SQLite) and the cluster database
 * (PostgreSQL), as small fragments, so one set of repositories and migrations serves both.
 * docs/cluster-sql.md lists where the repositories use which; test/db/dialect.test.ts runs each
 * fragment on both engines.
 */
export type SqlDialect = 'sqlite' | 'postgres';

/** Which engine a Kysely instance talks to, read from its adapter (the dialect's SQL rules). */
// biome-ignore lint/suspicious/noExplicitAny: works for a Kysely of any schema, the migrations' Kysely<unknown> included.
export function sqlDialect(db: Kysely<any>): SqlDialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? 'postgres' : 'sqlite';
}

/** A JSON object key as a path SQLite understands; keys are the code's own, never user input. */
function checkedKey(key: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`not a plain JSON key: ${key}`);
  return key;
}

/**
 * The text of a top-level key of a JSON object stored as text (null when absent). On PostgreSQL
 * the column is cast to jsonb; an index on this expression (archives_sha256) is used only by a
 * query that spells it the same way.
 */
export function jsonText(dialect: SqlDialect, column: string, key: string): RawBuilder<string | null> {
  const name = checkedKey(key);
  return dialect === 'postgres' ? sql`(${sql.ref(column)}::jsonb ->> ${sql.lit(name)})` : sql`json_extract(${sql.ref(column)}, ${sql.lit(`$.${name}`)})`;
}

/**
 * A FROM item with one column `value`: the text of each element of the JSON array under `key`
 * (none when the key is absent), named `alias`. Use: `exists (select 1 from ${...} where value = ?)`.
 */
export function jsonArrayValues(dialect: SqlDialect, column: string, key: string, alias: string): RawBuilder<unknown> {
  const name = checkedKey(key);
  return dialect === 'postgres'
    ? sql`jsonb_array_elements_text(${sql.ref(column)}::jsonb -> ${sql.lit(name)}) as ${sql.id(alias)}(value)`
    : sql`json_each(${sql.ref(column)}, ${sql.lit(`$.${name}`)}) as ${sql.id(alias)}`;
}

/**
 * True when `needle` occurs in `haystack`, case-sensitively, with no pattern characters (SQLite's instr).
 */
export function containsText(dialect: SqlDialect, haystack: RawBuilder<unknown>, needle: string): RawBuilder<boolean> {
  return dialect === 'postgres' ? sql<boolean>`(strpos(${haystack}, ${needle}) > 0)` : sql<boolean>`(instr(${haystack}, ${needle}) > 0)`;
}

/**
 * One term of a full-text search: its words must occur in this order (a phrase; in practice one
 * word), the last one as a prefix when `prefix` is set. Text is taken literally, never as query syntax.
 */
export interface SearchTerm {
  text: string;
  prefix: boolean;
}

/**
 * The full-text indexes: SQLite FTS5 tables with bm25 weights per column, and their PostgreSQL
 * counterparts (migrations 0014, 0015): one weighted tsvector per row, ranked by ts_rank with the
 * weights of its classes {D, C, B, A}.
 */
const SEARCH_INDEXES = {
  /** archives_fts (archive_id, name, label, volume, tags, notes, fields): a label or tag hit counts most. */
  archives: { table: 'archives_fts', sqliteId: 'archive_id', bm25: [0, 4, 10, 5, 8, 1, 2], postgresId: 'archive_id', classWeights: '{0.1, 0.2, 0.45, 0.9}' },
  /** archive_file_search over archive_file_entries (name, path): a name hit counts ten times a path hit. */
  files: { table: 'archive_file_search', sqliteId: 'rowid', bm25: [10, 1], postgresId: 'entry_id', classWeights: '{0.1, 0, 0, 1}' },
} as const;

export type SearchIndex = keyof typeof SEARCH_INDEXES;

/**
 * The rows of a full-text index that hold every term, as a FROM item named `alias` with the
 * columns `id` (archives: the archive id; files: the archive_file_entries id) and `rank` (lower
 * is better on both engines: FTS5's bm25, PostgreSQL's negated ts_rank). Null when no term has
 * anything searchable. The two engines' ranks put hits in a like order but differ in value.
 */
export function fullTextHits(dialect: SqlDialect, index: SearchIndex, terms: readonly SearchTerm[], alias: string): RawBuilder<unknown> | null {
  const searchable = terms.filter((term) => /[\p{L}\p{N}]/u.test(term.text));
  if (searchable.length === 0) return null;
  const { table, sqliteId, bm25, postgresId, classWeights } = SEARCH_INDEXES[index];
  if (dialect === 'sqlite') {
    // Quoted strings: quotes, stars, colons and AND/OR/NOT are plain text, never FTS5 syntax.
    const match = searchable.map((term) => `"${term.text.replaceAll('"', '""')}"${term.prefix ? '*' : ''}`).join(' ');
    return sql`(select ${sql.raw(sqliteId)} as id, bm25(${sql.raw(table)}, ${sql.join(bm25.map((weight) => sql.lit(weight)))}) as rank
      from ${sql.raw(table)} where ${sql.raw(table)} match ${match}) as ${sql.id(alias)}`;
  }
  // disk2iso_tsquery (migration 0014) normalises a term as the index's triggers normalise the text.
  const query = sql.join(
    searchable.map((term) => sql`disk2iso_tsquery(${term.text}, ${term.prefix})`),
    sql` && `,
  );
  return sql`(select ${sql.raw(postgresId)} as id, -ts_rank(${sql.lit(classWeights)}, document, search.query) as rank
    from ${sql.raw(table)}, (select ${query} as query) as search where document @@ search.query) as ${sql.id(alias)}`;
}

/** The error a unique index or primary key raised, on either engine. */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === '23505';
}

/**
 * The error a foreign key raised, on either engine.
 */
export function isForeignKeyViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_FOREIGNKEY' || code === '23503';
}
