import type { Selectable } from 'kysely';
import { type Clock, systemClock } from '../clock.js';
import type { JsonValue } from '../json.js';
import type { Database } from './database.js';
import type { SettingsTable } from './schema.js';
import { fromJson, timestamp, toJson } from './values.js';

/** A setting written through the API or the CLI; it overrides the config file and environment. */
interface SettingRecord {
  /** Dotted path into the configuration, e.g. `imaging.read_attempts`. */
  key: string;
  value: JsonValue;
  updatedAt: string;
  updatedBy: string | null;
}

export interface SettingsRepository {
  get(key: string): Promise<SettingRecord | null>;
  /** Sorted by key. */
  list(): Promise<SettingRecord[]>;
  /** Writes all entries in one transaction: a settings form is saved whole or not at all. */
  set(entries: Record<string, JsonValue>, updatedBy?: string | null): Promise<SettingRecord[]>;
  /** Removes overrides, so the configured values apply again; returns how many existed. */
  delete(keys: readonly string[]): Promise<number>;
}

function rowToSetting(row: Selectable<SettingsTable>): SettingRecord {
  return { key: row.key, value: fromJson<JsonValue>(row.value), updatedAt: row.updated_at, updatedBy: row.updated_by };
}

export function createSettingsRepository(database: Database, options: { now?: Clock } = {}): SettingsRepository {
  const db = database.kysely;
  const now = options.now ?? systemClock;

  return {
    async get(key) {
      const row = await db.selectFrom('settings').selectAll().where('key', '=', key).executeTakeFirst();
      return row === undefined ? null : rowToSetting(row);
    },

    async list() {
      const rows = await db.selectFrom('settings').selectAll().orderBy('key').execute();
      return rows.map(rowToSetting);
    },

    async set(entries, updatedBy = null) {
      const at = timestamp(now());
      return database.transaction(async (tx) => {
        const stored: SettingRecord[] = [];
        for (const [key, value] of Object.entries(entries)) {
          const rows = await tx.all(
            db
              .insertInto('settings')
              .values({ key, value: toJson(value), updated_at: at, updated_by: updatedBy })
              .onConflict((conflict) =>
                conflict.column('key').doUpdateSet((eb) => ({
                  value: eb.ref('excluded.value'),
                  updated_at: eb.ref('excluded.updated_at'),
                  updated_by: eb.ref('excluded.updated_by'),
                })),
              )
              .returningAll(),
          );
          stored.push(...rows.map(rowToSetting));
        }
        return stored;
      });
    },

    async delete(keys) {
      if (keys.length === 0) return 0;
      const result = await db.deleteFrom('settings').where('key', 'in', keys).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
