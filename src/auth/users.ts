import type { Executor } from '../db/database.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors.js';
import type { CredentialChecker } from './credentials.js';
import type { AuthDeps } from './deps.js';
import { type StoredUser, type UserRecord, publicUser } from './model.js';
import { assertPasswordPolicy } from './password.js';
import { type Actor, type ClientInfo, type Principal, actorForAudit, requirePermission } from './principal.js';
import { USER_ROLES, type UserRole, isRole } from './roles.js';
import { newAuthId } from './secrets.js';

const USER_NAME_PATTERN = /^[a-z][a-z0-9._-]{2,31}$/;

export function assertUserName(name: string): void {
  if (!USER_NAME_PATTERN.test(name)) {
    throw new ValidationError(
      'invalid_user_name',
      'User name must be 3 to 32 characters: a lower-case letter first, then lower-case letters, digits, ".", "_" or "-"',
      { name },
    );
  }
}

export function assertRole(role: string): asserts role is UserRole {
  if (!isRole(role)) throw new ValidationError('invalid_role', `Role must be one of ${USER_ROLES.join(', ')}`, { role });
}

interface NewUserInput {
  name: string;
  role: string;
  password: string;
  /** The user must choose a new password at the first login (for passwords an admin handed out). */
  requireChange?: boolean;
}

/**
 * Managing users. Every change is checked against the actor's rights, keeps at least one enabled
 * admin, and commits together with its audit entry.
 */
export interface UserService {
  add(input: NewUserInput, actor: Actor): Promise<UserRecord>;
  list(actor: Actor): Promise<UserRecord[]>;
  get(name: string, actor: Actor): Promise<UserRecord>;
  /** Sets a password for someone (the forgotten-password path), ends their sessions and lifts a lockout. */
  resetPassword(name: string, password: string, actor: Actor, options?: { requireChange?: boolean }): Promise<UserRecord>;
  /** Changes one's own password; needs the current one. Ends all the user's sessions, including this one. */
  changeOwnPassword(principal: Principal, currentPassword: string, newPassword: string, client: ClientInfo): Promise<UserRecord>;
  setRole(name: string, role: string, actor: Actor): Promise<UserRecord>;
  disable(name: string, actor: Actor): Promise<UserRecord>;
  enable(name: string, actor: Actor): Promise<UserRecord>;
  delete(name: string, actor: Actor): Promise<void>;
}

type Deps = Pick<AuthDeps, 'database' | 'users' | 'sessions' | 'throttle' | 'audit' | 'hasher' | 'now'> & { credentials: CredentialChecker };

export function createUserService(deps: Deps): UserService {
  const { database, users, sessions, throttle, audit, hasher, now, credentials } = deps;

  async function existing(tx: Executor, name: string): Promise<StoredUser> {
    const user = await users.findByNameWithin(tx, name);
    if (user === null) throw new NotFoundError('user_not_found', `No user named ${name}`, { name });
    return user;
  }

  /** Refuses a change that would leave no enabled admin: nobody could manage the service any more. */
  async function keepAnAdmin(tx: Executor, user: StoredUser, what: string): Promise<void> {
    if (user.role !== 'admin' || user.disabled) return;
    if ((await users.countEnabledAdminsWithin(tx)) <= 1) {
      throw new ConflictError('last_admin', `Cannot ${what} ${user.name}: it is the last enabled admin`, { name: user.name });
    }
  }

  return {
    async add(input, actor) {
      requirePermission(actor, 'users:admin');
      assertUserName(input.name);
      assertRole(input.role);
      const role = input.role;
      assertPasswordPolicy(input.password);
      const passwordHash = await hasher.hash(input.password);
      const requireChange = input.requireChange ?? false;
      const user = await database.transaction(async (tx) => {
        const created = await users.insertWithin(tx, {
          id: newAuthId('user'),
          name: input.name,
          role,
          passwordHash,
          passwordResetRequired: requireChange,
          at: now(),
        });
        await audit.recordWithin(tx, {
          event_type: 'user',
          action: 'add',
          ...actorForAudit(actor, { name: created.name, role, require_password_change: requireChange }),
        });
        return created;
      });
      return publicUser(user);
    },

    async list(actor) {
      requirePermission(actor, 'users:admin');
      return users.list();
    },

    async get(name, actor) {
      requirePermission(actor, 'users:admin');
      const user = await users.findByName(name);
      if (user === null) throw new NotFoundError('user_not_found', `No user named ${name}`, { name });
      return publicUser(user);
    },

    async resetPassword(name, password, actor, options = {}) {
      requirePermission(actor, 'users:admin');
      assertPasswordPolicy(password);
      const hash = await hasher.hash(password);
      const requireChange = options.requireChange ?? false;
      const user = await database.transaction(async (tx) => {
        const target = await existing(tx, name);
        const updated = await users.updateWithin(tx, target.id, { password: { hash, resetRequired: requireChange } }, { at: now(), bumpCredentials: true });
        const sessionsEnded = await sessions.deleteForUserWithin(tx, target.id);
        await throttle.clearWithin(tx, 'account', target.name);
        await audit.recordWithin(tx, {
          event_type: 'user',
          action: 'reset_password',
          ...actorForAudit(actor, { name: target.name, sessions_ended: sessionsEnded, require_password_change: requireChange }),
        });
        return updated;
      });
      return publicUser(user);
    },

    async changeOwnPassword(principal, currentPassword, newPassword, client) {
      if (principal.kind !== 'user') {
        throw new ForbiddenError('password_change_needs_login', 'A password can only be changed by its owner after signing in with it');
      }
      assertPasswordPolicy(newPassword);
      if (newPassword === currentPassword) throw new ValidationError('password_unchanged', 'The new password must differ from the current one');
      const user = await credentials.verify(principal.name, currentPassword, client, 'password_change');
      const hash = await hasher.hash(newPassword);
      const updated = await database.transaction(async (tx) => {
        const changed = await users.updateWithin(tx, user.id, { password: { hash, resetRequired: false } }, { at: now(), bumpCredentials: true });
        const sessionsEnded = await sessions.deleteForUserWithin(tx, user.id);
        await audit.recordWithin(tx, {
          event_type: 'password_change',
          action: 'change',
          user: user.name,
          ip_address: client.ip,
          user_agent: client.userAgent,
          details: { sessions_ended: sessionsEnded },
        });
        return changed;
      });
      return publicUser(updated);
    },

    async setRole(name, role, actor) {
      requirePermission(actor, 'users:admin');
      assertRole(role);
      const user = await database.transaction(async (tx) => {
        const target = await existing(tx, name);
        if (target.role === role) return target;
        if (role !== 'admin') await keepAnAdmin(tx, target, 'demote');
        const updated = await users.updateWithin(tx, target.id, { role }, { at: now(), bumpCredentials: true });
        await audit.recordWithin(tx, {
          event_type: 'user',
          action: 'role_change',
          ...actorForAudit(actor, { name: target.name, from: target.role, to: role }),
        });
        return updated;
      });
      return publicUser(user);
    },

    async disable(name, actor) {
      requirePermission(actor, 'users:admin');
      const user = await database.transaction(async (tx) => {
        const target = await existing(tx, name);
        if (target.disabled) return target;
        await keepAnAdmin(tx, target, 'disable');
        const updated = await users.updateWithin(tx, target.id, { disabled: true }, { at: now(), bumpCredentials: true });
        const sessionsEnded = await sessions.deleteForUserWithin(tx, target.id);
        await audit.recordWithin(tx, { event_type: 'user', action: 'disable', ...actorForAudit(actor, { name: target.name, sessions_ended: sessionsEnded }) });
        return updated;
      });
      return publicUser(user);
    },

    async enable(name, actor) {
      requirePermission(actor, 'users:admin');
      const user = await database.transaction(async (tx) => {
        const target = await existing(tx, name);
        if (!target.disabled) return target;
        const updated = await users.updateWithin(tx, target.id, { disabled: false }, { at: now(), bumpCredentials: false });
        await audit.recordWithin(tx, { event_type: 'user', action: 'enable', ...actorForAudit(actor, { name: target.name }) });
        return updated;
      });
      return publicUser(user);
    },

    async delete(name, actor) {
      requirePermission(actor, 'users:admin');
      await database.transaction(async (tx) => {
        const target = await existing(tx, name);
        await keepAnAdmin(tx, target, 'delete');
        await users.deleteWithin(tx, target.id);
        await audit.recordWithin(tx, { event_type: 'user', action: 'delete', ...actorForAudit(actor, { name: target.name, role: target.role }) });
      });
    },
  };
}
