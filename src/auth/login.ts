import type { CredentialChecker } from './credentials.js';
import type { AuthDeps } from './deps.js';
import { type UserRecord, publicUser } from './model.js';
import { type ClientInfo, type Principal, userPrincipal } from './principal.js';
import { secretHash } from './secrets.js';
import type { SessionService, StartedSession } from './sessions.js';

export interface LoginResult {
  session: StartedSession;
  principal: Principal;
  user: UserRecord;
}

export interface LoginService {
  /**
   * Checks the credentials (lockout rules, one answer for every failure) and starts a new session
   * with a new id. `replacingSessionId`, the cookie the browser still sent, is ended with it, so a
   * session id planted before the login is never the one that gets authenticated.
   */
  login(name: string, password: string, client: ClientInfo, options?: { replacingSessionId?: string }): Promise<LoginResult>;
  /** Ends the principal's session; a principal from a key or a token has none to end. */
  logout(principal: Principal, client: ClientInfo): Promise<void>;
}

type Deps = Pick<AuthDeps, 'database' | 'users' | 'sessions' | 'audit' | 'policy' | 'now'> & {
  credentials: CredentialChecker;
  sessionService: SessionService;
};

export function createLoginService(deps: Deps): LoginService {
  const { database, users, sessions, audit, policy, now, credentials, sessionService } = deps;

  return {
    async login(name, password, client, options = {}) {
      const user = await credentials.verify(name, password, client, 'login');
      const at = now();
      const session = await database.transaction(async (tx) => {
        if (options.replacingSessionId !== undefined) await sessions.deleteWithin(tx, [secretHash(options.replacingSessionId)]);
        const started = await sessionService.startWithin(tx, user, client, at);
        await users.recordLoginWithin(tx, user.id, at);
        await audit.recordWithin(tx, {
          event_type: 'authentication',
          action: 'login_success',
          user: user.name,
          ip_address: client.ip,
          user_agent: client.userAgent,
          details: { method: 'password', ...(started.endedSessions > 0 ? { ended_oldest_sessions: started.endedSessions } : {}) },
        });
        return started;
      });
      const principal = userPrincipal(user, at, policy.passwordMaxAgeMs, { session: { idHash: secretHash(session.id), csrfToken: session.csrfToken } });
      return { session, principal, user: publicUser(user) };
    },

    async logout(principal, client) {
      if (principal.sessionId === undefined) return;
      await sessionService.end(principal.sessionId);
      await audit.record({
        event_type: 'authentication',
        action: 'logout',
        user: principal.name,
        ip_address: client.ip,
        user_agent: client.userAgent,
        details: { method: 'session' },
      });
    },
  };
}
