import { type Kysely, type Migration, sql } from 'kysely';

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
    await sql`create index archives_sha256 on archives (json_extract(checksums, '$.sha256'))`.execute(db);

    await db.schema
      .createTable('user_preferences')
      .addColumn('user_name', 'text', (column) => column.notNull())
      .addColumn('key', 'text', (column) => column.notNull())
      .addColumn('value', 'text', (column) => column.notNull())
      .addPrimaryKeyConstraint('user_preferences_pk', ['user_name', 'key'])
      .execute();

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
