import { type Kysely, type Migration, sql } from 'kysely';
import { sqlDialect } from '../dialect.js';

/** What the full-text index holds for an archive row (`row` is `new` in the triggers). */
const FTS_VALUES = (row: string) => `${row}.id, ${row}.filename,
  coalesce(json_extract(${row}.metadata, '$.label'), ''),
  coalesce(json_extract(${row}.source, '$.volumeLabel'), ''),
  coalesce((select group_concat(value, ' ') from json_each(${row}.metadata, '$.tags')), ''),
  coalesce(json_extract(${row}.metadata, '$.notes'), ''),
  coalesce((select group_concat(value, ' ') from json_each(${row}.metadata, '$.customFields')), '')`;

const FTS_COLUMNS = 'archive_id, name, label, volume, tags, notes, fields';

/**
 * The catalogue: an admin-managed list of categories, a category and a 1-5 rating per archive
 * (columns, so the page filters and sorts on them), per-user preferences, an index on the images'
 * SHA-256 (duplicates), and an FTS5 index of each archive's name, labels, tags, notes and custom
 * field values. Triggers keep the index in step with every insert, update and delete of an archive,
 * whoever writes it. Frozen like every released migration.
 */
export const catalogueMigration: Migration = {
  async up(db: Kysely<unknown>) {
    const postgres = sqlDialect(db) === 'postgres';
    await db.schema
      .createTable('archive_categories')
      .addColumn('id', 'text', (column) => column.primaryKey())
      .addColumn('name', 'text', (column) => column.notNull())
      .addColumn('created_at', 'text', (column) => column.notNull())
      .execute();
    await sql`create unique index archive_categories_name on archive_categories (lower(name))`.execute(db);
    await db.schema
      .alterTable('archives')
      .addColumn('category_id', 'text', (column) => column.references('archive_categories.id').onDelete('set null'))
      .execute();
    await db.schema
      .alterTable('archives')
      .addColumn('rating', 'integer', (column) => column.check(sql`rating between 1 and 5`))
      .execute();
    await db.schema.createIndex('archives_category_id').on('archives').column('category_id').execute();
    await db.schema.createIndex('archives_rating').on('archives').column('rating').execute();
    if (postgres) await sql`create index archives_sha256 on archives ((checksums::jsonb ->> 'sha256'))`.execute(db);
    else await sql`create index archives_sha256 on archives (json_extract(checksums, '$.sha256'))`.execute(db);

    await db.schema
      .createTable('user_preferences')
      .addColumn('user_name', 'text', (column) => column.notNull())
      .addColumn('key', 'text', (column) => column.notNull())
      .addColumn('value', 'text', (column) => column.notNull())
      .addPrimaryKeyConstraint('user_preferences_pk', ['user_name', 'key'])
      .execute();

    if (postgres) {
      await postgresSearchIndex(db);
      return;
    }
    // archive_id is not indexed for matching; rows are found by it when an archive changes.
    await sql
      .raw(`create virtual table archives_fts using fts5(
        archive_id unindexed, name, label, volume, tags, notes, fields, tokenize = 'unicode61 remove_diacritics 2')`)
      .execute(db);
    await sql
      .raw(`create trigger archives_fts_insert after insert on archives begin
        insert into archives_fts (${FTS_COLUMNS}) values (${FTS_VALUES('new')}); end`)
      .execute(db);
    await sql
      .raw(`create trigger archives_fts_update after update of filename, metadata, source on archives begin
        delete from archives_fts where archive_id = old.id;
        insert into archives_fts (${FTS_COLUMNS}) values (${FTS_VALUES('new')}); end`)
      .execute(db);
    await sql
      .raw(`create trigger archives_fts_delete after delete on archives begin
        delete from archives_fts where archive_id = old.id; end`)
      .execute(db);
    await sql.raw(`insert into archives_fts (${FTS_COLUMNS}) select ${FTS_VALUES('archives')} from archives`).execute(db);
  },
  async down(db: Kysely<unknown>) {
    for (const trigger of ['archives_fts_insert', 'archives_fts_update', 'archives_fts_delete']) await sql.raw(`drop trigger ${trigger}`).execute(db);
    await sql`drop table archives_fts`.execute(db);
    await db.schema.dropTable('user_preferences').execute();
    await db.schema.dropIndex('archives_sha256').execute();
    await db.schema.dropIndex('archives_rating').execute();
    await db.schema.dropIndex('archives_category_id').execute();
    await db.schema.alterTable('archives').dropColumn('rating').execute();
    await db.schema.alterTable('archives').dropColumn('category_id').execute();
    await db.schema.dropTable('archive_categories').execute();
  },
};

/**
 * PostgreSQL's counterpart of archives_fts: one tsvector per archive, kept by triggers, with the
 * FTS5 columns' bm25 weights folded into PostgreSQL's four weight classes (label and tags A, name
 * and volume label B, custom field values C, notes D). Text is normalised by 0014's
 * disk2iso_search_words. A deleted archive's row goes by its foreign key.
 */
async function postgresSearchIndex(db: Kysely<unknown>): Promise<void> {
  await sql`create table archives_fts (
    archive_id text primary key references archives(id) on delete cascade,
    document tsvector not null
  )`.execute(db);
  await sql`create index archives_fts_document on archives_fts using gin (document)`.execute(db);
  await sql`create function archives_fts_document(filename text, metadata text, source text) returns tsvector language sql stable as $$
    select setweight(to_tsvector('simple', disk2iso_search_words(filename)), 'B')
      || setweight(to_tsvector('simple', disk2iso_search_words(coalesce(meta ->> 'label', ''))), 'A')
      || setweight(to_tsvector('simple', disk2iso_search_words(coalesce(source::jsonb ->> 'volumeLabel', ''))), 'B')
      || setweight(to_tsvector('simple', disk2iso_search_words(coalesce((select string_agg(value, ' ')
           from jsonb_array_elements_text(case jsonb_typeof(meta -> 'tags') when 'array' then meta -> 'tags' else '[]' end)), ''))), 'A')
      || setweight(to_tsvector('simple', disk2iso_search_words(coalesce(meta ->> 'notes', ''))), 'D')
      || setweight(to_tsvector('simple', disk2iso_search_words(coalesce((select string_agg(value, ' ')
           from jsonb_each_text(case jsonb_typeof(meta -> 'customFields') when 'object' then meta -> 'customFields' else '{}' end)), ''))), 'C')
    from (select metadata::jsonb as meta) as parsed $$`.execute(db);
  await sql`create function archives_fts_refresh() returns trigger language plpgsql as $$ begin
    insert into archives_fts (archive_id, document) values (new.id, archives_fts_document(new.filename, new.metadata, new.source))
      on conflict (archive_id) do update set document = excluded.document;
    return null;
  end $$`.execute(db);
  await sql`create trigger archives_fts_insert after insert on archives for each row execute function archives_fts_refresh()`.execute(db);
  await sql`create trigger archives_fts_update after update of filename, metadata, source on archives
    for each row execute function archives_fts_refresh()`.execute(db);
  await sql`insert into archives_fts (archive_id, document) select id, archives_fts_document(filename, metadata, source) from archives`.execute(db);
}
