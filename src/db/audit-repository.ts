import type { Insertable, Selectable } from 'kysely';
import type { AuditEntry } from '../audit/model.js';
import type { JsonObject } from '../json.js';
import type { AuditLogTable } from './auth-schema.js';
import type { Database, Executor } from './database.js';
import { type ListResult, type SortOrder, fromJson, page, timestamp, toJson } from './values.js';

/** An entry before it is stored: the trail gives the time, the table the sequence number. */
type NewAuditEntry = Omit<AuditEntry, 'id' | 'timestamp'> & { at: Date };

export interface AuditListFilter {
  user?: string;
  eventType?: string;
  action?: string;
  /** timestamp >= since */
  since?: Date;
  /** timestamp < until */
  until?: Date;
  /** Default: desc (newest first). */
  order?: SortOrder;
  limit?: number;
  offset?: number;
}

/**
 * Append-only: there is deliberately no update and no delete by id. `prune` exists for the
 * retention setting alone; the database refuses updates with a trigger.
 */
export interface AuditRepository {
  append(entry: NewAuditEntry): Promise<AuditEntry>;
  /** Appends inside a caller's write transaction, so an action and its entry commit together. */
  appendWithin(tx: Executor, entry: NewAuditEntry): Promise<void>;
  list(filter?: AuditListFilter): Promise<ListResult<AuditEntry>>;
  /** Deletes entries older than `before`; returns how many. */
  prune(before: Date): Promise<number>;
}

function rowToEntry(row: Selectable<AuditLogTable>): AuditEntry {
  return {
    id: row.id,
    timestamp: row.timestamp,
    event_type: row.event_type,
    action: row.action,
    user: row.user,
    ip_address: row.ip_address,
    user_agent: row.user_agent,
    details: fromJson<JsonObject>(row.details),
  };
}

function entryToRow(entry: NewAuditEntry): Insertable<AuditLogTable> {
  return {
    timestamp: timestamp(entry.at),
    event_type: entry.event_type,
    action: entry.action,
    user: entry.user,
    ip_address: entry.ip_address,
    user_agent: entry.user_agent,
    details: toJson(entry.details),
  };
}

export function createAuditRepository(database: Database): AuditRepository {
  const db = database.kysely;

  return {
    async append(entry) {
      const row = await db.insertInto('audit_log').values(entryToRow(entry)).returningAll().executeTakeFirstOrThrow();
      return rowToEntry(row);
    },

    async appendWithin(tx, entry) {
      await tx.run(db.insertInto('audit_log').values(entryToRow(entry)));
    },

    async list(filter = {}) {
      const { limit, offset } = page(filter.limit, filter.offset);
      let query = db.selectFrom('audit_log');
      if (filter.user !== undefined) query = query.where('user', '=', filter.user);
      if (filter.eventType !== undefined) query = query.where('event_type', '=', filter.eventType);
      if (filter.action !== undefined) query = query.where('action', '=', filter.action);
      if (filter.since !== undefined) query = query.where('timestamp', '>=', timestamp(filter.since));
      if (filter.until !== undefined) query = query.where('timestamp', '<', timestamp(filter.until));
      const rows = await query
        .selectAll()
        .orderBy('id', filter.order ?? 'desc')
        .limit(limit)
        .offset(offset)
        .execute();
      const { total } = await query.select((eb) => eb.fn.countAll<number>().as('total')).executeTakeFirstOrThrow();
      return { items: rows.map(rowToEntry), total };
    },

    async prune(before) {
      const result = await db.deleteFrom('audit_log').where('timestamp', '<', timestamp(before)).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
