import type { Database, Executor } from './database.js';
import { lockedRows } from './row-locks.js';
import { timestamp } from './values.js';

interface SetupTokenRecord {
  tokenHash: string;
  createdAt: string;
  expiresAt: string;
  usedAt: string | null;
}

/** One-time tokens that let the first admin be created from the browser. */
export interface SetupTokenRepository {
  /** Stores a new token and drops every unused one: only the token printed last works. */
  replaceWithin(tx: Executor, token: { tokenHash: string; at: Date; expiresAt: Date }): Promise<void>;
  find(tokenHash: string): Promise<SetupTokenRecord | null>;
  findWithin(tx: Executor, tokenHash: string): Promise<SetupTokenRecord | null>;
  markUsedWithin(tx: Executor, tokenHash: string, at: Date): Promise<void>;
}

export function createSetupTokenRepository(database: Database): SetupTokenRepository {
  const db = database.kysely;
  const byHash = (tokenHash: string) => db.selectFrom('setup_tokens').selectAll().where('token_hash', '=', tokenHash);
  const toRecord = (row: { token_hash: string; created_at: string; expires_at: string; used_at: string | null }): SetupTokenRecord => ({
    tokenHash: row.token_hash,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    usedAt: row.used_at,
  });

  return {
    async replaceWithin(tx, token) {
      await tx.run(db.deleteFrom('setup_tokens').where('used_at', 'is', null));
      await tx.run(
        db.insertInto('setup_tokens').values({
          token_hash: token.tokenHash,
          created_at: timestamp(token.at),
          expires_at: timestamp(token.expiresAt),
          used_at: null,
        }),
      );
    },

    async find(tokenHash) {
      const row = await byHash(tokenHash).executeTakeFirst();
      return row === undefined ? null : toRecord(row);
    },

    async findWithin(tx, tokenHash) {
      // Locked on PostgreSQL: a second use of the same token at once waits and then finds it used.
      const row = await tx.first(lockedRows(database, byHash(tokenHash)));
      return row === undefined ? null : toRecord(row);
    },

    async markUsedWithin(tx, tokenHash, at) {
      await tx.run(
        db
          .updateTable('setup_tokens')
          .set({ used_at: timestamp(at) })
          .where('token_hash', '=', tokenHash),
      );
    },
  };
}
