import type { Selectable } from 'kysely';
import type { Liveness } from '../auth/model.js';
import type { SessionsTable } from './auth-schema.js';
import type { Database, Executor } from './database.js';
import { timestamp } from './values.js';

interface SessionRecord {
  /** SHA-256 of the id the cookie carries; the id itself is never stored. */
  idHash: string;
  userId: string;
  csrfToken: string;
  createdAt: string;
  lastSeenAt: string;
  expiresAt: string;
  ipAddress: string | null;
  userAgent: string | null;
}

interface NewSession {
  idHash: string;
  userId: string;
  csrfToken: string;
  at: Date;
  expiresAt: Date;
  ipAddress: string | null;
  userAgent: string | null;
}

export interface SessionRepository {
  insertWithin(tx: Executor, session: NewSession): Promise<void>;
  /** The session if it is live, else null (an ended one is deleted on the way). */
  findLiveWithin(tx: Executor, idHash: string, liveness: Liveness): Promise<SessionRecord | null>;
  touchWithin(tx: Executor, idHash: string, at: Date): Promise<void>;
  /** The user's live sessions, oldest first. */
  listLiveWithin(tx: Executor, userId: string, liveness: Liveness): Promise<SessionRecord[]>;
  /** Returns how many it deleted. */
  deleteWithin(tx: Executor, idHashes: readonly string[]): Promise<number>;
  deleteForUserWithin(tx: Executor, userId: string): Promise<number>;
  /** Removes sessions that are no longer live; returns how many. */
  pruneEnded(liveness: Liveness): Promise<number>;
}

function rowToSession(row: Selectable<SessionsTable>): SessionRecord {
  return {
    idHash: row.id_hash,
    userId: row.user_id,
    csrfToken: row.csrf_token,
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    expiresAt: row.expires_at,
    ipAddress: row.ip_address,
    userAgent: row.user_agent,
  };
}

function isLive(session: SessionRecord, liveness: Liveness): boolean {
  return session.lastSeenAt > timestamp(liveness.idleSince) && session.expiresAt > timestamp(liveness.now);
}

export function createSessionRepository(database: Database): SessionRepository {
  const db = database.kysely;

  return {
    async insertWithin(tx, session) {
      const at = timestamp(session.at);
      await tx.run(
        db.insertInto('sessions').values({
          id_hash: session.idHash,
          user_id: session.userId,
          csrf_token: session.csrfToken,
          created_at: at,
          last_seen_at: at,
          expires_at: timestamp(session.expiresAt),
          ip_address: session.ipAddress,
          user_agent: session.userAgent,
        }),
      );
    },

    async findLiveWithin(tx, idHash, liveness) {
      const row = await tx.first(db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash));
      if (row === undefined) return null;
      const session = rowToSession(row);
      if (isLive(session, liveness)) return session;
      await tx.run(db.deleteFrom('sessions').where('id_hash', '=', idHash));
      return null;
    },

    async touchWithin(tx, idHash, at) {
      await tx.run(
        db
          .updateTable('sessions')
          .set({ last_seen_at: timestamp(at) })
          .where('id_hash', '=', idHash),
      );
    },

    async listLiveWithin(tx, userId, liveness) {
      return (
        await tx.all(
          db
            .selectFrom('sessions')
            .selectAll()
            .where('user_id', '=', userId)
            .where('last_seen_at', '>', timestamp(liveness.idleSince))
            .where('expires_at', '>', timestamp(liveness.now))
            .orderBy('created_at')
            .orderBy('last_seen_at'),
        )
      ).map(rowToSession);
    },

    async deleteWithin(tx, idHashes) {
      if (idHashes.length === 0) return 0;
      return tx.run(db.deleteFrom('sessions').where('id_hash', 'in', idHashes));
    },

    async deleteForUserWithin(tx, userId) {
      return await tx.run(db.deleteFrom('sessions').where('user_id', '=', userId));
    },

    async pruneEnded(liveness) {
      const result = await db
        .deleteFrom('sessions')
        .where((eb) => eb.or([eb('last_seen_at', '<=', timestamp(liveness.idleSince)), eb('expires_at', '<=', timestamp(liveness.now))]))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
