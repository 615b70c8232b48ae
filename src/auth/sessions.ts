import type { Executor } from '../db/database.js';
import type { AuthDeps } from './deps.js';
import type { Liveness, UserRecord } from './model.js';
import { type ClientInfo, type Principal, userPrincipal } from './principal.js';
import { randomSecret, sameSecret, secretHash } from './secrets.js';

export interface StartedSession {
  /** The cookie value. Handed out once; the database keeps only its hash. */
  id: string;
  csrfToken: string;
  createdAt: string;
  /** The absolute end; the idle timeout may end it sooner. */
  expiresAt: string;
  /** How many older sessions of the user this one ended to stay within the limit. */
  endedSessions: number;
}

/**
 * Server-side sessions: a random 256-bit id per login, ending after the idle timeout (each use
 * extends it), at the absolute lifetime, on logout, and when the user's password changes or the
 * user is disabled. A user holds at most `maxSessionsPerUser`; a new login ends the oldest.
 */
export interface SessionService {
  /** Starts a session inside the caller's transaction (the login that earned it commits with it). */
  startWithin(tx: Executor, user: UserRecord, client: ClientInfo, at: Date): Promise<StartedSession>;
  /** The principal of a live session (and extends it), or null. */
  authenticate(sessionId: string): Promise<Principal | null>;
  /** Ends a session by the hash a principal carries; false when it had already ended. */
  end(idHash: string): Promise<boolean>;
  /** Deletes sessions that have ended; returns how many. */
  prune(): Promise<number>;
}

/** True when `token` is the session's CSRF token. Cookie-authenticated state changes must pass this. */
export function csrfTokenMatches(principal: Principal, token: string | undefined): boolean {
  if (principal.via !== 'session' || principal.csrfToken === undefined || token === undefined) return false;
  return sameSecret(token, principal.csrfToken);
}

type Deps = Pick<AuthDeps, 'database' | 'users' | 'sessions' | 'policy' | 'now'>;

export function createSessionService(deps: Deps): SessionService {
  const { database, users, sessions, policy, now } = deps;
  const liveness = (at: Date): Liveness => ({ now: at, idleSince: new Date(at.getTime() - policy.sessionIdleMs) });

  return {
    async startWithin(tx, user, client, at) {
      const id = randomSecret();
      const idHash = secretHash(id);
      const csrfToken = randomSecret();
      const expiresAt = new Date(at.getTime() + policy.sessionAbsoluteMs);
      const others = await sessions.listLiveWithin(tx, user.id, liveness(at));
      const excess = others.slice(0, Math.max(0, others.length - (policy.maxSessionsPerUser - 1)));
      const endedSessions = await sessions.deleteWithin(
        tx,
        excess.map((session) => session.idHash),
      );
      await sessions.insertWithin(tx, { idHash, userId: user.id, csrfToken, at, expiresAt, ipAddress: client.ip, userAgent: client.userAgent });
      return { id, csrfToken, createdAt: at.toISOString(), expiresAt: expiresAt.toISOString(), endedSessions };
    },

    async authenticate(sessionId) {
      const at = now();
      const idHash = secretHash(sessionId);
      return database.transaction(async (tx) => {
        const session = await sessions.findLiveWithin(tx, idHash, liveness(at));
        if (session === null) return null;
        const user = await users.getWithin(tx, session.userId);
        if (user === null || user.disabled) {
          await sessions.deleteWithin(tx, [idHash]);
          return null;
        }
        await sessions.touchWithin(tx, idHash, at);
        return userPrincipal(user, at, policy.passwordMaxAgeMs, { session: { idHash, csrfToken: session.csrfToken } });
      });
    },

    async end(idHash) {
      return (await database.transaction((tx) => sessions.deleteWithin(tx, [idHash]))) > 0;
    },

    prune() {
      return sessions.pruneEnded(liveness(now()));
    },
  };
}
