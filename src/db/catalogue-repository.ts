import type { ArchiveCategory } from '../archive/model.js';
import { type Clock, systemClock } from '../clock.js';
import { ConflictError, NotFoundError } from '../errors.js';
import type { Database } from './database.js';
import { isUniqueViolation } from './dialect.js';
import type { ArchiveCategoriesTable } from './schema.js';
import { newId, timestamp } from './values.js';

/** The admin-managed list of categories archives are put in. Names are unique regardless of case. */
export interface CategoryRepository {
  /** By name, case-insensitively. */
  list(): Promise<ArchiveCategory[]>;
  get(id: string): Promise<ArchiveCategory | null>;
  /** ConflictError `category_exists` when the name is taken. */
  create(name: string): Promise<ArchiveCategory>;
  rename(id: string, name: string): Promise<ArchiveCategory>;
  /** Archives in it become uncategorised. False when unknown. */
  delete(id: string): Promise<boolean>;
}

/** A user's preferences, by user name: small values the pages remember across devices. */
export interface PreferenceRepository {
  get(userName: string, key: string): Promise<string | null>;
  set(userName: string, key: string, value: string): Promise<void>;
}

function toCategory(row: ArchiveCategoriesTable): ArchiveCategory {
  return { id: row.id, name: row.name, createdAt: row.created_at };
}

export function createCategoryRepository(database: Database, options: { now?: Clock } = {}): CategoryRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;
  const taken = (name: string) => new ConflictError('category_exists', `a category named ${name} exists already`, { name });
  return {
    async list() {
      const rows = await db
        .selectFrom('archive_categories')
        .selectAll()
        .orderBy((eb) => eb.fn('lower', ['name']))
        .execute();
      return rows.map(toCategory);
    },
    async get(id) {
      const row = await db.selectFrom('archive_categories').selectAll().where('id', '=', id).executeTakeFirst();
      return row === undefined ? null : toCategory(row);
    },
    async create(name) {
      try {
        const row = await db
          .insertInto('archive_categories')
          .values({ id: newId('category'), name, created_at: timestamp(now()) })
          .returningAll()
          .executeTakeFirstOrThrow();
        return toCategory(row);
      } catch (error) {
        if (isUniqueViolation(error)) throw taken(name);
        throw error;
      }
    },
    async rename(id, name) {
      try {
        const row = await db.updateTable('archive_categories').set({ name }).where('id', '=', id).returningAll().executeTakeFirst();
        if (row === undefined) throw new NotFoundError('category_not_found', `no category ${id}`, { category_id: id });
        return toCategory(row);
      } catch (error) {
        if (isUniqueViolation(error)) throw taken(name);
        throw error;
      }
    },
    async delete(id) {
      const result = await db.deleteFrom('archive_categories').where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
  };
}

export function createPreferenceRepository(database: Database): PreferenceRepository {
  const db = database.kysely;
  return {
    async get(userName, key) {
      const row = await db.selectFrom('user_preferences').select('value').where('user_name', '=', userName).where('key', '=', key).executeTakeFirst();
      return row?.value ?? null;
    },
    async set(userName, key, value) {
      await db
        .insertInto('user_preferences')
        .values({ user_name: userName, key, value })
        .onConflict((conflict) => conflict.columns(['user_name', 'key']).doUpdateSet({ value }))
        .execute();
    },
  };
}
