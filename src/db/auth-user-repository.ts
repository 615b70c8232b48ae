import type { Selectable, Updateable } from 'kysely';
import { type StoredUser, type UserRecord, publicUser } from '../auth/model.js';
import type { UserRole } from '../auth/roles.js';
import { ConflictError } from '../errors.js';
import type { UsersTable } from './auth-schema.js';
import type { Database, Executor } from './database.js';
import { lockedRows } from './row-locks.js';
import { timestamp } from './values.js';

interface NewUser {
  id: string;
  name: string;
  role: UserRole;
  passwordHash: string;
  passwordResetRequired: boolean;
  at: Date;
}

interface UserChanges {
  role?: UserRole;
  disabled?: boolean;
  password?: { hash: string; resetRequired: boolean };
}

/**
 * Users. Writes take the caller's transaction (`…Within`), so the service can check a rule (the last
 * admin), change a user, end sessions and record the audit entry in one commit.
 */
export interface UserRepository {
  get(id: string): Promise<StoredUser | null>;
  findByName(name: string): Promise<StoredUser | null>;
  /** Sorted by name. */
  list(): Promise<UserRecord[]>;
  getWithin(tx: Executor, id: string): Promise<StoredUser | null>;
  findByNameWithin(tx: Executor, name: string): Promise<StoredUser | null>;
  countEnabledAdmins(): Promise<number>;
  countEnabledAdminsWithin(tx: Executor): Promise<number>;
  insertWithin(tx: Executor, user: NewUser): Promise<StoredUser>;
  /** Applies the changes; `bumpCredentials` invalidates every token issued before. */
  updateWithin(tx: Executor, id: string, changes: UserChanges, options: { at: Date; bumpCredentials: boolean }): Promise<StoredUser>;
  deleteWithin(tx: Executor, id: string): Promise<void>;
  recordLoginWithin(tx: Executor, id: string, at: Date): Promise<void>;
}

function rowToStoredUser(row: Selectable<UsersTable>): StoredUser {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    disabled: row.disabled === 1,
    passwordChangedAt: row.password_changed_at,
    passwordResetRequired: row.password_reset_required === 1,
    credentialsVersion: row.credentials_version,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastLoginAt: row.last_login_at,
    passwordHash: row.password_hash,
  };
}

export function createUserRepository(database: Database): UserRepository {
  const db = database.kysely;
  const byId = (id: string) => db.selectFrom('users').selectAll().where('id', '=', id);
  const byName = (name: string) => db.selectFrom('users').selectAll().where('name', '=', name);
  const enabledAdmins = () =>
    db
      .selectFrom('users')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('role', '=', 'admin')
      .where('disabled', '=', 0);

  return {
    async get(id) {
      const row = await byId(id).executeTakeFirst();
      return row === undefined ? null : rowToStoredUser(row);
    },

    async findByName(name) {
      const row = await byName(name).executeTakeFirst();
      return row === undefined ? null : rowToStoredUser(row);
    },

    async list() {
      const rows = await db.selectFrom('users').selectAll().orderBy('name').execute();
      return rows.map((row) => publicUser(rowToStoredUser(row)));
    },

    async getWithin(tx, id) {
      const row = await tx.first(byId(id));
      return row === undefined ? null : rowToStoredUser(row);
    },

    async findByNameWithin(tx, name) {
      const row = await tx.first(byName(name));
      return row === undefined ? null : rowToStoredUser(row);
    },

    async countEnabledAdmins() {
      return (await enabledAdmins().executeTakeFirstOrThrow()).count;
    },

    async countEnabledAdminsWithin(tx) {
      // The rows themselves, locked on PostgreSQL: two admins demoting each other at once would
      // otherwise both count two and leave none. The second waits, then counts what the first left.
      const admins = db.selectFrom('users').select('id').where('role', '=', 'admin').where('disabled', '=', 0);
      return (await tx.all(lockedRows(database, admins))).length;
    },

    async insertWithin(tx, user) {
      if ((await tx.first(byName(user.name))) !== undefined) {
        throw new ConflictError('user_exists', `User ${user.name} already exists`, { name: user.name });
      }
      const at = timestamp(user.at);
      const row = await tx.first(
        db
          .insertInto('users')
          .values({
            id: user.id,
            name: user.name,
            role: user.role,
            password_hash: user.passwordHash,
            password_changed_at: at,
            password_reset_required: user.passwordResetRequired ? 1 : 0,
            disabled: 0,
            credentials_version: 1,
            created_at: at,
            updated_at: at,
            last_login_at: null,
          })
          .returningAll(),
      );
      if (row === undefined) throw new Error(`inserting user ${user.name} returned no row`);
      return rowToStoredUser(row);
    },

    async updateWithin(tx, id, changes, options) {
      const at = timestamp(options.at);
      const values: Updateable<UsersTable> = { updated_at: at };
      if (changes.role !== undefined) values.role = changes.role;
      if (changes.disabled !== undefined) values.disabled = changes.disabled ? 1 : 0;
      if (changes.password !== undefined) {
        values.password_hash = changes.password.hash;
        values.password_changed_at = at;
        values.password_reset_required = changes.password.resetRequired ? 1 : 0;
      }
      const row = await tx.first(
        db
          .updateTable('users')
          .set((eb) => ({
            ...values,
            credentials_version: options.bumpCredentials ? eb('credentials_version', '+', 1) : eb.ref('credentials_version'),
          }))
          .where('id', '=', id)
          .returningAll(),
      );
      if (row === undefined) throw new Error(`user ${id} vanished inside its own transaction`);
      return rowToStoredUser(row);
    },

    async deleteWithin(tx, id) {
      await tx.run(db.deleteFrom('users').where('id', '=', id));
    },

    async recordLoginWithin(tx, id, at) {
      await tx.run(
        db
          .updateTable('users')
          .set({ last_login_at: timestamp(at) })
          .where('id', '=', id),
      );
    },
  };
}
