import { ConflictError } from '../errors.js';
import type { AuthDeps } from './deps.js';
import { AuthenticationError } from './errors.js';
import { type UserRecord, publicUser } from './model.js';
import { assertPasswordPolicy } from './password.js';
import type { ClientInfo } from './principal.js';
import { newAuthId, randomSecret, secretHash } from './secrets.js';
import { assertUserName } from './users.js';

interface SetupToken {
  token: string;
  expiresAt: string;
}

/**
 * The one-time way to the first admin without a shell: while no enabled admin exists, the service
 * asks for a token at start and prints it as a setup link. The token is stored hashed, expires,
 * works once, and a newer token replaces any unused older one.
 */
export interface SetupService {
  /** True while there is no enabled admin. */
  needed(): Promise<boolean>;
  /** A fresh token; ConflictError once an admin exists. */
  createToken(): Promise<SetupToken>;
  /** Whether the token would be accepted now (for showing the setup form). */
  isValid(token: string): Promise<boolean>;
  /** Creates the first admin and uses the token up. */
  complete(token: string, name: string, password: string, client: ClientInfo): Promise<UserRecord>;
}

type Deps = Pick<AuthDeps, 'database' | 'users' | 'setupTokens' | 'audit' | 'hasher' | 'policy' | 'now'>;

const SETUP_DONE = 'An admin exists already; sign in, or use `disk2iso user` on the server';

export function createSetupService(deps: Deps): SetupService {
  const { database, users, setupTokens, audit, hasher, policy, now } = deps;
  const live = (record: { usedAt: string | null; expiresAt: string } | null, at: Date): boolean =>
    record !== null && record.usedAt === null && Date.parse(record.expiresAt) > at.getTime();

  return {
    async needed() {
      return (await users.countEnabledAdmins()) === 0;
    },

    async createToken() {
      const token = randomSecret();
      const at = now();
      const expiresAt = new Date(at.getTime() + policy.setupTokenLifetimeMs);
      await database.transaction(async (tx) => {
        if ((await users.countEnabledAdminsWithin(tx)) > 0) throw new ConflictError('setup_done', SETUP_DONE);
        await setupTokens.replaceWithin(tx, { tokenHash: secretHash(token), at, expiresAt });
        await audit.recordWithin(tx, {
          event_type: 'setup',
          action: 'token_created',
          user: null,
          ip_address: 'local',
          user_agent: null,
          details: { expires_at: expiresAt.toISOString() },
        });
      });
      return { token, expiresAt: expiresAt.toISOString() };
    },

    async isValid(token) {
      return live(await setupTokens.find(secretHash(token)), now());
    },

    async complete(token, name, password, client) {
      assertUserName(name);
      assertPasswordPolicy(password);
      const passwordHash = await hasher.hash(password);
      const tokenHash = secretHash(token);
      const at = now();
      const admin = await database.transaction(async (tx) => {
        if (!live(await setupTokens.findWithin(tx, tokenHash), at)) return null;
        if ((await users.countEnabledAdminsWithin(tx)) > 0) throw new ConflictError('setup_done', SETUP_DONE);
        const created = await users.insertWithin(tx, { id: newAuthId('user'), name, role: 'admin', passwordHash, passwordResetRequired: false, at });
        await setupTokens.markUsedWithin(tx, tokenHash, at);
        const who = { user: created.name, ip_address: client.ip, user_agent: client.userAgent };
        await audit.recordWithin(tx, { event_type: 'user', action: 'add', ...who, details: { name: created.name, role: 'admin', via: 'setup_token' } });
        await audit.recordWithin(tx, { event_type: 'setup', action: 'completed', ...who, details: {} });
        return created;
      });
      if (admin === null)
        throw new AuthenticationError('invalid_setup_token', 'This setup link is invalid, used or expired; restart the service for a new one');
      return publicUser(admin);
    },
  };
}
