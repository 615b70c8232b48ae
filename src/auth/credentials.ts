import type { AuditEvent } from '../audit/trail.js';
import type { Executor } from '../db/database.js';
import type { AuthDeps } from './deps.js';
import { AuthenticationError, LockedOutError } from './errors.js';
import type { StoredUser, ThrottleScope } from './model.js';
import { DUMMY_PASSWORD_HASH } from './password.js';
import type { LockoutRule } from './policy.js';
import type { ClientInfo } from './principal.js';

/** What a password is being checked for; it decides how a failure is audited. */
type CredentialPurpose = 'login' | 'token' | 'password_change';

export interface CredentialChecker {
  /**
   * The enabled user with this name and password. Refuses while the account or the address is
   * locked out (LockedOutError); otherwise any mismatch is the same AuthenticationError, after the
   * same bcrypt work, and counts towards a lockout.
   */
  verify(name: string, password: string, client: ClientInfo, purpose: CredentialPurpose): Promise<StoredUser>;
}

/** Names arrive from a login form; the longest valid one has 32 characters, the bound keeps junk small. */
function accountKey(name: string): string {
  return name.toLowerCase().slice(0, 64);
}

type Deps = Pick<AuthDeps, 'database' | 'users' | 'throttle' | 'audit' | 'hasher' | 'policy' | 'now'>;

export function createCredentialChecker(deps: Deps): CredentialChecker {
  const { database, users, throttle, audit, hasher, policy, now } = deps;

  function failureEvent(purpose: CredentialPurpose, account: string, client: ClientInfo, reason: string): AuditEvent {
    const who = { user: account, ip_address: client.ip, user_agent: client.userAgent };
    if (purpose === 'password_change') return { event_type: 'password_change', action: 'change_failure', ...who, details: { reason } };
    return { event_type: 'authentication', action: 'login_failure', ...who, details: { reason, method: 'password', purpose } };
  }

  async function countFailure(
    tx: Executor,
    scope: ThrottleScope,
    key: string,
    rule: LockoutRule,
    account: string,
    client: ClientInfo,
    at: Date,
  ): Promise<void> {
    await throttle.addFailureWithin(tx, scope, key, at);
    const failures = await throttle.countFailuresWithin(tx, scope, key, new Date(at.getTime() - rule.windowMs));
    if (failures < rule.failures) return;
    const until = new Date(at.getTime() + rule.lockMs);
    await throttle.lockWithin(tx, scope, key, at, until);
    await audit.recordWithin(tx, {
      event_type: 'authentication',
      action: 'lockout',
      user: account,
      ip_address: client.ip,
      user_agent: client.userAgent,
      details: { scope, key, failures, until: until.toISOString() },
    });
  }

  return {
    async verify(name, password, client, purpose) {
      const account = accountKey(name);
      const checkedAt = now();
      const lockout = await database.transaction(async (tx) => {
        const found =
          (await throttle.activeLockoutWithin(tx, 'account', account, checkedAt)) ?? (await throttle.activeLockoutWithin(tx, 'address', client.ip, checkedAt));
        if (found !== null) await audit.recordWithin(tx, failureEvent(purpose, account, client, `locked_out_${found.scope}`));
        return found;
      });
      if (lockout !== null) throw new LockedOutError(Math.max(1, Math.ceil((Date.parse(lockout.until) - checkedAt.getTime()) / 1000)));

      const user = await users.findByName(account);
      const matches = await hasher.verify(password, user?.passwordHash ?? DUMMY_PASSWORD_HASH);
      if (user !== null && matches && !user.disabled) {
        await database.transaction((tx) => throttle.clearWithin(tx, 'account', account));
        return user;
      }

      const reason = user === null ? 'unknown_user' : user.disabled ? 'disabled' : 'wrong_password';
      const failedAt = now();
      await database.transaction(async (tx) => {
        await audit.recordWithin(tx, failureEvent(purpose, account, client, reason));
        await countFailure(tx, 'account', account, policy.accountLockout, account, client, failedAt);
        await countFailure(tx, 'address', client.ip, policy.addressLockout, account, client, failedAt);
      });
      throw purpose === 'password_change' ? new AuthenticationError('wrong_password', 'The current password is wrong') : new AuthenticationError();
    },
  };
}
