import type { Selectable } from 'kysely';
import type { ApiKeyRecord } from '../auth/model.js';
import type { UserRole } from '../auth/roles.js';
import type { ApiKeysTable } from './auth-schema.js';
import type { Database, Executor } from './database.js';
import { changeCounterReader } from './table-versions.js';
import { fromJson, timestamp, toJson } from './values.js';

interface NewApiKey {
  id: string;
  userId: string;
  name: string;
  prefix: string;
  keyHash: string;
  scopes: readonly string[] | null;
  at: Date;
  createdBy: string;
  expiresAt: Date | null;
  parentId: string | null;
}

export interface ApiKeyRepository {
  insertWithin(tx: Executor, key: NewApiKey): Promise<void>;
  get(id: string): Promise<ApiKeyRecord | null>;
  getWithin(tx: Executor, id: string): Promise<ApiKeyRecord | null>;
  findByHash(keyHash: string): Promise<ApiKeyRecord | null>;
  /** Newest first; all keys or one user's. */
  list(filter?: { userId?: string }): Promise<ApiKeyRecord[]>;
  /**
   * Revokes the key and every key descending from it (created with it, or with one of those) that
   * is still unrevoked. Returns the descendants it revoked, ids in creation order.
   */
  revokeWithin(tx: Executor, id: string, at: Date): Promise<string[]>;
  /** Sets last_used_at unless it was set after `unlessUsedSince`; keeps a busy key from writing on every request. */
  markUsed(id: string, at: Date, unlessUsedSince: Date): Promise<void>;
  /** Raised by every change to a user or a key other than a last-use stamp, from any process. */
  credentialsVersion(): Promise<number>;
  /**
   * Deletes keys revoked before `endedBefore`, and unrevoked ones that expired before it, unless a
   * key created with them remains; returns how many.
   */
  deleteEnded(endedBefore: Date): Promise<number>;
}

type KeyRow = Selectable<ApiKeysTable> & { user_name: string; user_role: UserRole };

function rowToApiKey(row: KeyRow): ApiKeyRecord {
  return {
    id: row.id,
    userId: row.user_id,
    userName: row.user_name,
    userRole: row.user_role,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes === null ? null : fromJson<string[]>(row.scopes),
    createdAt: row.created_at,
    createdBy: row.created_by,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    parentId: row.parent_id,
  };
}

export function createApiKeyRepository(database: Database): ApiKeyRepository {
  const db = database.kysely;
  const withOwner = () =>
    db
      .selectFrom('api_keys')
      .innerJoin('users', 'users.id', 'api_keys.user_id')
      .selectAll('api_keys')
      .select(['users.name as user_name', 'users.role as user_role']);

  return {
    async insertWithin(tx, key) {
      await tx.run(
        db.insertInto('api_keys').values({
          id: key.id,
          user_id: key.userId,
          name: key.name,
          prefix: key.prefix,
          key_hash: key.keyHash,
          scopes: key.scopes === null ? null : toJson([...key.scopes]),
          created_at: timestamp(key.at),
          created_by: key.createdBy,
          expires_at: key.expiresAt === null ? null : timestamp(key.expiresAt),
          revoked_at: null,
          last_used_at: null,
          parent_id: key.parentId,
        }),
      );
    },

    async get(id) {
      const row = await withOwner().where('api_keys.id', '=', id).executeTakeFirst();
      return row === undefined ? null : rowToApiKey(row);
    },

    async getWithin(tx, id) {
      // Locked on PostgreSQL: a child key made from this key and a revocation of it take turns, so
      // the child is refused or revoked with it, never left live under a revoked parent.
      const query = withOwner().where('api_keys.id', '=', id);
      const row = await tx.first(database.dialect === 'postgres' ? query.forUpdate(['api_keys']) : query);
      return row === undefined ? null : rowToApiKey(row);
    },

    async findByHash(keyHash) {
      const row = await withOwner().where('api_keys.key_hash', '=', keyHash).executeTakeFirst();
      return row === undefined ? null : rowToApiKey(row);
    },

    async list(filter = {}) {
      let query = withOwner();
      if (filter.userId !== undefined) query = query.where('api_keys.user_id', '=', filter.userId);
      const rows = await query.orderBy('api_keys.created_at', 'desc').orderBy('api_keys.id').execute();
      return rows.map(rowToApiKey);
    },

    async revokeWithin(tx, id, at) {
      const tree = (
        await tx.all(
          db
            .withRecursive('tree(id)', (cte) =>
              cte
                .selectFrom('api_keys')
                .select('id')
                .where('id', '=', id)
                .union(cte.selectFrom('api_keys').innerJoin('tree', 'tree.id', 'api_keys.parent_id').select('api_keys.id')),
            )
            .selectFrom('api_keys')
            .innerJoin('tree', 'tree.id', 'api_keys.id')
            .select('api_keys.id')
            .where('api_keys.revoked_at', 'is', null)
            .orderBy('api_keys.created_at')
            .orderBy('api_keys.id'),
        )
      ).map((row) => row.id);
      if (tree.length === 0) return [];
      await tx.run(
        db
          .updateTable('api_keys')
          .set({ revoked_at: timestamp(at) })
          .where('id', 'in', tree),
      );
      return tree.filter((revoked) => revoked !== id);
    },

    async markUsed(id, at, unlessUsedSince) {
      await db
        .updateTable('api_keys')
        .set({ last_used_at: timestamp(at) })
        .where('id', '=', id)
        .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', timestamp(unlessUsedSince))]))
        .execute();
    },

    credentialsVersion: changeCounterReader(db, 'credentials'),

    async deleteEnded(endedBefore) {
      const cutoff = timestamp(endedBefore);
      let deleted = 0;
      // Leaves first, one generation per round: deleting a key deletes the keys created with it
      // (ON DELETE CASCADE), and one of those may still work.
      for (;;) {
        const result = await db
          .deleteFrom('api_keys')
          .where((eb) => eb.or([eb('revoked_at', '<', cutoff), eb.and([eb('revoked_at', 'is', null), eb('expires_at', '<', cutoff)])]))
          .where((eb) => eb.not(eb.exists(eb.selectFrom('api_keys as child').select('child.id').whereRef('child.parent_id', '=', 'api_keys.id'))))
          .executeTakeFirst();
        const round = Number(result.numDeletedRows);
        if (round === 0) return deleted;
        deleted += round;
      }
    },
  };
}
