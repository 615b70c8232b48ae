import type { Executor } from '../db/database.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors.js';
import type { AuthDeps } from './deps.js';
import { AuthenticationError, PasswordChangeRequiredError } from './errors.js';
import type { ApiKeyRecord, StoredUser } from './model.js';
import { type Actor, type Principal, actorForAudit, actorName, createPrincipal, requirePermission } from './principal.js';
import { PERMISSIONS, type Permission, type UserRole, isPermission, permissionsOf } from './roles.js';
import { newAuthId, randomSecret, secretHash } from './secrets.js';

/** Every key starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const API_KEY_PREFIX = 'd2i_';
/** The furthest expiry a key may be given in days (the API and the key page offer days). */
export const API_KEY_MAX_EXPIRY_DAYS = 3650;
const DAY_MS = 24 * 60 * 60 * 1000;
/**
 * How long a revoked or expired key stays listed (for an admin looking into what it did; the
 * audit trail keeps its creation and revocation for security.audit_retention_days) before the
 * service's housekeeping deletes it.
 */
export const ENDED_API_KEY_RETENTION_DAYS = 90;

/** The expiry `days` whole days from `now`. */
export function expiryAfterDays(days: number, now: Date = new Date()): Date {
  return new Date(now.getTime() + days * DAY_MS);
}
/** `d2i_` and base64url of 32 random bytes. */
const API_KEY_PATTERN = /^d2i_[A-Za-z0-9_-]{43}$/;
/** How much of the key listings show: enough to tell keys apart, far too little to guess the rest. */
const VISIBLE_LENGTH = API_KEY_PREFIX.length + 8;
const MAX_LABEL_LENGTH = 100;
/** Keys remembered after a successful lookup; a client rarely uses more than a few. */
const RECENT_KEY_LIMIT = 256;

/** A key found by its hash, with its owner as they were then, and when its use was last written. */
interface RecentKey {
  record: ApiKeyRecord;
  owner: StoredUser | null;
  markedAt: number;
}

interface NewApiKeyInput {
  /** The owner's user name. */
  user: string;
  /** A label saying what the key is for. */
  name: string;
  /** Omitted or null: all of the owner's rights, now and as they change. */
  scopes?: readonly string[] | null;
  expiresAt?: Date | null;
}

interface CreatedApiKey {
  /** The secret itself. Shown once: only its hash is stored. */
  key: string;
  record: ApiKeyRecord;
}

interface RevokedApiKey {
  record: ApiKeyRecord;
  /** The keys descending from it (created with it or with one of those) that were revoked along with it. */
  alsoRevoked: string[];
}

/**
 * Creating, listing and revoking keys needs keys:manage. A request carrying a key or a bearer token
 * is bounded by that credential: it creates keys only for its own user, only with explicit scopes it
 * holds, expiring no later than itself, and a key made with a key is revoked with it. It sees and
 * revokes only keys whose rights lie within its own. A signed-in session acts with the user's full
 * rights; the CLI with all.
 */
export interface ApiKeyService {
  create(input: NewApiKeyInput, actor: Actor): Promise<CreatedApiKey>;
  /** Keys of one user (by name) or, for admins, of everyone; only those within the actor's rights. */
  list(filter: { user?: string }, actor: Actor): Promise<ApiKeyRecord[]>;
  revoke(id: string, actor: Actor): Promise<RevokedApiKey>;
  /** The principal an `X-API-Key` value stands for, or null when it is unknown, revoked, expired or its owner disabled. */
  authenticate(key: string): Promise<Principal | null>;
  /** The principal of a key by id (for tokens issued for a key), under the same rules as `authenticate`. */
  principalForKey(id: string, via: 'api_key' | 'jwt'): Promise<Principal | null>;
}

/** A key's rights: its scopes within what its owner's role allows today, so a demoted owner's keys lose rights too. */
function effectivePermissions(ownerRole: UserRole, scopes: readonly string[] | null): ReadonlySet<Permission> {
  const granted = permissionsOf(ownerRole);
  if (scopes === null) return granted;
  return new Set(PERMISSIONS.filter((permission) => granted.has(permission) && scopes.includes(permission)));
}

function checkedScopes(scopes: readonly string[] | null | undefined): Permission[] | null {
  if (scopes === undefined || scopes === null) return null;
  if (scopes.length === 0) throw new ValidationError('invalid_scopes', "Give at least one scope, or none for all of the owner's rights");
  const unknown = scopes.filter((scope) => !isPermission(scope));
  if (unknown.length > 0) {
    throw new ValidationError('invalid_scopes', `Unknown scope(s) ${unknown.join(', ')}; known: ${PERMISSIONS.join(', ')}`, { unknown });
  }
  return PERMISSIONS.filter((permission) => scopes.includes(permission));
}

function checkedLabel(name: string): string {
  const label = name.trim();
  if (label.length === 0 || label.length > MAX_LABEL_LENGTH || /\p{Cc}/u.test(label)) {
    throw new ValidationError('invalid_api_key_name', `API key name must be 1 to ${MAX_LABEL_LENGTH} characters without control characters`, { name });
  }
  return label;
}

type Deps = Pick<AuthDeps, 'database' | 'users' | 'apiKeys' | 'audit' | 'policy' | 'now'>;

/**
 * The principal of a request that carried a key or a bearer token: what it creates must stay within
 * that credential. Null for the CLI and for a signed-in session, which act with their full rights.
 */
function boundingCredential(actor: Actor): Principal | null {
  if (actor.kind === 'local' || actor.principal.via === 'session') return null;
  return actor.principal;
}

/** True when every right of the key is one the actor holds too (the CLI holds all). */
function withinActorRights(actor: Actor, record: ApiKeyRecord): boolean {
  if (actor.kind === 'local') return true;
  const held = actor.principal.permissions;
  return [...effectivePermissions(record.userRole, record.scopes)].every((permission) => held.has(permission));
}

/** Refuses a child that would exceed or outlive the key or token creating it. */
function requireWithinCredential(credential: Principal, user: string, scopes: readonly Permission[] | null, expiresAt: Date | null): void {
  if (credential.name !== user) {
    throw new ForbiddenError('key_for_other_user', 'A key or bearer token creates keys only for its own user; sign in to create keys for others', { user });
  }
  if (scopes === null || scopes.some((scope) => !credential.permissions.has(scope))) {
    throw new ForbiddenError('scope_exceeds_rights', 'A key or bearer token can only create keys with explicit scopes it holds itself');
  }
  const limit = credential.expiresAt;
  if (limit !== undefined && (expiresAt === null || expiresAt.getTime() > Date.parse(limit))) {
    throw new ForbiddenError('expiry_exceeds_credential', `The key must expire no later than the credential creating it, at ${limit}`, { limit });
  }
}

export function createApiKeyService(deps: Deps): ApiKeyService {
  const { database, users, apiKeys, audit, policy, now } = deps;

  /**
   * A request may manage its own keys; other people's need users:admin. Checked before looking the
   * owner up, so a non-admin cannot learn which names exist from the answer.
   */
  function requireOwnerOrAdmin(actor: Actor, isOwner: (principal: Principal) => boolean): void {
    if (actor.kind === 'request') {
      if (actor.principal.mustChangePassword) throw new PasswordChangeRequiredError();
      if (isOwner(actor.principal)) return;
    }
    requirePermission(actor, 'users:admin');
  }

  /** The parent must still be usable when its child is written: a revocation committed since the request began wins. */
  async function requireUsableParent(tx: Executor, parentId: string, at: Date): Promise<void> {
    const parent = await apiKeys.getWithin(tx, parentId);
    if (parent === null || parent.revokedAt !== null || (parent.expiresAt !== null && Date.parse(parent.expiresAt) <= at.getTime())) {
      throw new AuthenticationError('invalid_credentials', 'The API key of this request was revoked or has expired');
    }
  }

  async function owner(name: string): Promise<StoredUser> {
    const user = await users.findByName(name);
    if (user === null) throw new NotFoundError('user_not_found', `No user named ${name}`, { name });
    return user;
  }

  function principalOf(record: ApiKeyRecord, user: StoredUser | null, via: 'api_key' | 'jwt', at: Date): Principal | null {
    if (record.revokedAt !== null) return null;
    if (record.expiresAt !== null && Date.parse(record.expiresAt) <= at.getTime()) return null;
    if (user === null || user.disabled) return null;
    return createPrincipal({
      kind: 'api_key',
      via,
      user,
      permissions: effectivePermissions(user.role, record.scopes),
      mustChangePassword: false,
      apiKeyId: record.id,
      ...(record.expiresAt === null ? {} : { expiresAt: record.expiresAt }),
    });
  }

  async function markUsed(id: string, at: Date): Promise<void> {
    await apiKeys.markUsed(id, at, new Date(at.getTime() - policy.apiKeyUseResolutionMs));
  }

  async function usable(record: ApiKeyRecord | null, via: 'api_key' | 'jwt'): Promise<Principal | null> {
    if (record === null) return null;
    const at = now();
    const principal = principalOf(record, await users.get(record.userId), via, at);
    if (principal !== null) await markUsed(record.id, at);
    return principal;
  }

  /**
   * A client sends its key with every request, and looking it and its owner up was most of what a
   * cached job list cost. A key found once is remembered for as long as the credentials counter
   * stays the same: any change to any user or key, from any process, forgets them all, so a revoked
   * key or a disabled owner is refused from the next request on. Unknown keys are never remembered,
   * so guessing cannot fill memory.
   */
  const recentKeys = new Map<string, RecentKey>();
  let recentVersion: number | undefined;

  async function recentKey(keyHash: string): Promise<RecentKey | null> {
    const version = await apiKeys.credentialsVersion();
    if (version !== recentVersion) {
      recentKeys.clear();
      recentVersion = version;
    }
    const known = recentKeys.get(keyHash);
    if (known !== undefined) return known;
    const record = await apiKeys.findByHash(keyHash);
    if (record === null) return null;
    const found: RecentKey = { record, owner: await users.get(record.userId), markedAt: record.lastUsedAt === null ? 0 : Date.parse(record.lastUsedAt) };
    if (recentKeys.size >= RECENT_KEY_LIMIT) recentKeys.clear();
    // A change between the counter's reading and the lookups raised the counter: the next request forgets this entry.
    recentKeys.set(keyHash, found);
    return found;
  }

  return {
    async create(input, actor) {
      const label = checkedLabel(input.name);
      const scopes = checkedScopes(input.scopes);
      const expiresAt = input.expiresAt ?? null;
      requirePermission(actor, 'keys:manage');
      requireOwnerOrAdmin(actor, (principal) => principal.name === input.user);
      const credential = boundingCredential(actor);
      if (credential !== null) requireWithinCredential(credential, input.user, scopes, expiresAt);
      const parentId = credential?.kind === 'api_key' ? (credential.apiKeyId ?? null) : null;
      const user = await owner(input.user);
      if (user.disabled) throw new ConflictError('user_disabled', `User ${user.name} is disabled`, { user: user.name });
      const rights = permissionsOf(user.role);
      const beyond = (scopes ?? []).filter((scope) => !rights.has(scope));
      if (beyond.length > 0) {
        throw new ValidationError('scope_exceeds_rights', `Scope(s) ${beyond.join(', ')} exceed the rights of ${user.role} ${user.name}`, {
          beyond,
          role: user.role,
        });
      }
      const at = now();
      if (expiresAt !== null && expiresAt.getTime() <= at.getTime()) {
        throw new ValidationError('invalid_expiry', 'An API key must expire in the future', { expires_at: expiresAt.toISOString() });
      }
      const key = `${API_KEY_PREFIX}${randomSecret()}`;
      const id = newAuthId('key');
      const record = await database.transaction(async (tx) => {
        if (parentId !== null) await requireUsableParent(tx, parentId, at);
        await apiKeys.insertWithin(tx, {
          id,
          userId: user.id,
          name: label,
          prefix: key.slice(0, VISIBLE_LENGTH),
          keyHash: secretHash(key),
          scopes,
          at,
          createdBy: actorName(actor),
          expiresAt,
          parentId,
        });
        await audit.recordWithin(tx, {
          event_type: 'api_key',
          action: 'create',
          ...actorForAudit(actor, {
            key_id: id,
            owner: user.name,
            name: label,
            prefix: key.slice(0, VISIBLE_LENGTH),
            scopes,
            expires_at: expiresAt === null ? null : expiresAt.toISOString(),
            parent_id: parentId,
          }),
        });
        const stored = await apiKeys.getWithin(tx, id);
        if (stored === null) throw new Error(`API key ${id} vanished inside its own transaction`);
        return stored;
      });
      return { key, record };
    },

    async list(filter, actor) {
      requirePermission(actor, 'keys:manage');
      let keys: ApiKeyRecord[];
      if (filter.user === undefined) {
        requirePermission(actor, 'users:admin');
        keys = await apiKeys.list();
      } else {
        const name = filter.user;
        requireOwnerOrAdmin(actor, (principal) => principal.name === name);
        keys = await apiKeys.list({ userId: (await owner(name)).id });
      }
      return keys.filter((key) => withinActorRights(actor, key));
    },

    async revoke(id, actor) {
      requirePermission(actor, 'keys:manage');
      return database.transaction(async (tx) => {
        const record = await apiKeys.getWithin(tx, id);
        if (record === null) throw new NotFoundError('api_key_not_found', `No API key ${id}`, { id });
        requireOwnerOrAdmin(actor, (principal) => principal.userId === record.userId);
        if (!withinActorRights(actor, record)) {
          throw new ForbiddenError('key_exceeds_rights', `API key ${id} holds rights this credential lacks`, { id });
        }
        if (record.revokedAt !== null) throw new ConflictError('api_key_revoked', `API key ${id} is already revoked`, { id, revoked_at: record.revokedAt });
        const alsoRevoked = await apiKeys.revokeWithin(tx, id, now());
        await audit.recordWithin(tx, {
          event_type: 'api_key',
          action: 'revoke',
          ...actorForAudit(actor, {
            key_id: id,
            owner: record.userName,
            name: record.name,
            ...(alsoRevoked.length === 0 ? {} : { also_revoked: alsoRevoked }),
          }),
        });
        const revoked = await apiKeys.getWithin(tx, id);
        if (revoked === null) throw new Error(`API key ${id} vanished inside its own transaction`);
        return { record: revoked, alsoRevoked };
      });
    },

    async authenticate(key) {
      if (!API_KEY_PATTERN.test(key)) return null;
      const known = await recentKey(secretHash(key));
      if (known === null) return null;
      const at = now();
      const principal = principalOf(known.record, known.owner, 'api_key', at);
      if (principal !== null && at.getTime() - known.markedAt >= policy.apiKeyUseResolutionMs) {
        known.markedAt = at.getTime();
        await markUsed(known.record.id, at);
      }
      return principal;
    },

    async principalForKey(id, via) {
      return usable(await apiKeys.get(id), via);
    },
  };
}
