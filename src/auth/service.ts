import { join } from 'node:path';
import { type AuditTrail, createAuditTrail } from '../audit/trail.js';
import { type Clock, systemClock } from '../clock.js';
import { createAuditRepository } from '../db/audit-repository.js';
import { createApiKeyRepository } from '../db/auth-api-key-repository.js';
import { createSessionRepository } from '../db/auth-session-repository.js';
import { createSetupTokenRepository } from '../db/auth-setup-repository.js';
import { createThrottleRepository } from '../db/auth-throttle-repository.js';
import { createUserRepository } from '../db/auth-user-repository.js';
import type { Database } from '../db/database.js';
import { createSecretRepository } from '../db/secret-repository.js';
import { type ApiKeyService, ENDED_API_KEY_RETENTION_DAYS, createApiKeyService } from './api-keys.js';
import { createCredentialChecker } from './credentials.js';
import type { AuthDeps } from './deps.js';
import { type LoginService, createLoginService } from './login.js';
import { type PasswordHasher, bcryptHasher } from './password.js';
import { type AuthPolicy, DEFAULT_AUTH_POLICY } from './policy.js';
import type { Principal } from './principal.js';
import { type SessionService, createSessionService } from './sessions.js';
import { type SetupService, createSetupService } from './setup.js';
import { SIGNING_KEY_FILE, type TokenService, createTokenService } from './tokens.js';
import { type UserService, createUserService } from './users.js';

/** The credentials a request carried, as the HTTP layer extracts them. */
export interface RequestCredentials {
  /** The session cookie's value. */
  cookie?: string | undefined;
  /** `X-API-Key` */
  apiKeyHeader?: string | undefined;
  /** The token of `Authorization: Bearer <token>`. */
  bearer?: string | undefined;
}

export interface AuthService {
  users: UserService;
  apiKeys: ApiKeyService;
  tokens: TokenService;
  sessions: SessionService;
  setup: SetupService;
  audit: AuditTrail;
  login: LoginService['login'];
  logout: LoginService['logout'];
  /**
   * The principal behind a request, or null (401). An API key wins over a bearer token, which wins
   * over the cookie; a credential that is present but invalid gives null even when another one
   * would be valid, so a bad key never silently falls back to a browser session.
   */
  authenticateRequest(credentials: RequestCredentials): Promise<Principal | null>;
  /**
   * Removes ended sessions, old login failures and ended lockouts, and keys revoked or expired
   * more than ENDED_API_KEY_RETENTION_DAYS ago; returns how many of each went.
   */
  prune(): Promise<PrunedAuth>;
}

interface PrunedAuth {
  sessions: number;
  /** Login failures older than the longest lockout window, and lockouts that ended. */
  loginFailures: number;
  apiKeys: number;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export interface CreateAuthServiceOptions {
  database: Database;
  /** Where the JWT signing key lives (`jwt.key`, made on first use). */
  dataDir: string;
  /** The trail other services record to as well; made from the database when not given. */
  audit?: AuditTrail;
  policy?: Partial<AuthPolicy>;
  hasher?: PasswordHasher;
  now?: Clock;
}

export function createAuthService(options: CreateAuthServiceOptions): AuthService {
  const { database } = options;
  const now = options.now ?? systemClock;
  const policy = { ...DEFAULT_AUTH_POLICY, ...options.policy };
  const deps: AuthDeps = {
    database,
    users: createUserRepository(database),
    sessions: createSessionRepository(database),
    apiKeys: createApiKeyRepository(database),
    throttle: createThrottleRepository(database),
    setupTokens: createSetupTokenRepository(database),
    audit: options.audit ?? createAuditTrail({ repository: createAuditRepository(database), now }),
    hasher: options.hasher ?? bcryptHasher,
    policy,
    now,
  };
  const credentials = createCredentialChecker(deps);
  const sessions = createSessionService(deps);
  const apiKeys = createApiKeyService(deps);
  const tokens = createTokenService({
    ...deps,
    signingKeyFile: join(options.dataDir, SIGNING_KEY_FILE),
    ...(database.dialect === 'postgres' ? { sharedSecrets: createSecretRepository(database) } : {}),
    credentials,
    apiKeyService: apiKeys,
  });
  const loginService = createLoginService({ ...deps, credentials, sessionService: sessions });

  return {
    users: createUserService({ ...deps, credentials }),
    apiKeys,
    tokens,
    sessions,
    setup: createSetupService(deps),
    audit: deps.audit,
    login: loginService.login,
    logout: loginService.logout,

    async authenticateRequest(request) {
      if (request.apiKeyHeader !== undefined) return apiKeys.authenticate(request.apiKeyHeader);
      if (request.bearer !== undefined) return tokens.verify(request.bearer);
      if (request.cookie !== undefined) return sessions.authenticate(request.cookie);
      return null;
    },

    async prune() {
      const at = now();
      const longestWindow = Math.max(policy.accountLockout.windowMs, policy.addressLockout.windowMs);
      return {
        sessions: await sessions.prune(),
        loginFailures: await deps.throttle.prune(new Date(at.getTime() - longestWindow), at),
        apiKeys: await deps.apiKeys.deleteEnded(new Date(at.getTime() - ENDED_API_KEY_RETENTION_DAYS * DAY_MS)),
      };
    },
  };
}
