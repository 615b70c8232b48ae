import type { Config } from '../config/schema.js';

/** The rules of authentication in one place; the service takes them, tests shorten nothing but the clock. */
export interface LockoutRule {
  /** Failures within `windowMs` that lock… */
  failures: number;
  windowMs: number;
  /** …for this long. */
  lockMs: number;
}

export interface AuthPolicy {
  passwordMaxAgeMs: number;
  /** A session ends after this long without a request… */
  sessionIdleMs: number;
  /** …and after this long whatever the activity. */
  sessionAbsoluteMs: number;
  /** Beyond this, a new login ends the user's oldest session. */
  maxSessionsPerUser: number;
  accountLockout: LockoutRule;
  addressLockout: LockoutRule;
  tokenLifetimeMs: number;
  setupTokenLifetimeMs: number;
  /** last_used_at of an API key is written at most this often. */
  apiKeyUseResolutionMs: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

export const DEFAULT_AUTH_POLICY: AuthPolicy = {
  passwordMaxAgeMs: 90 * DAY,
  sessionIdleMs: 30 * MINUTE,
  sessionAbsoluteMs: 24 * HOUR,
  maxSessionsPerUser: 5,
  accountLockout: { failures: 5, windowMs: 15 * MINUTE, lockMs: 15 * MINUTE },
  addressLockout: { failures: 20, windowMs: 15 * MINUTE, lockMs: 15 * MINUTE },
  tokenLifetimeMs: 15 * MINUTE,
  setupTokenLifetimeMs: HOUR,
  apiKeyUseResolutionMs: MINUTE,
};

/** The parts of the rules an administrator sets (`security.*`); the lockout rules keep their defaults. */
export function authPolicyOf(config: Pick<Config, 'security'>): Partial<AuthPolicy> {
  const { security } = config;
  return {
    passwordMaxAgeMs: security.password_max_age_days * DAY,
    sessionIdleMs: security.session_idle_minutes * MINUTE,
    sessionAbsoluteMs: security.session_lifetime_hours * HOUR,
    maxSessionsPerUser: security.max_sessions_per_user,
    tokenLifetimeMs: security.token_lifetime_minutes * MINUTE,
  };
}
