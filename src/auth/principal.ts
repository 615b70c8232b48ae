import type { AuditEvent } from '../audit/trail.js';
import { ForbiddenError } from '../errors.js';
import type { JsonObject } from '../json.js';
import { PasswordChangeRequiredError } from './errors.js';
import type { StoredUser, UserRecord } from './model.js';
import { type Permission, type UserRole, permissionsOf } from './roles.js';

/** Who a request acts for, and what it may do. */
export interface Principal {
  /** `user`: signed in with a password (session, or a token issued for one); `api_key`: an API key or a token issued for one. */
  kind: 'user' | 'api_key';
  via: 'session' | 'api_key' | 'jwt';
  userId: string;
  name: string;
  role: UserRole;
  /** Effective rights: the role's, narrowed by the key's scopes for `api_key`. */
  permissions: ReadonlySet<Permission>;
  /** The password is too old or was reset by someone else: nothing but changing it is allowed. */
  mustChangePassword: boolean;
  /** SHA-256 of the session id (never the id itself), for `via: 'session'`. */
  sessionId?: string;
  /** What a form or fetch call must send along with a session cookie. */
  csrfToken?: string;
  apiKeyId?: string;
  /**
   * When the key or bearer token this request carried stops working: nothing it creates may outlive
   * it. Absent for a key without expiry and for a session (a signed-in user's keys may outlive the session).
   */
  expiresAt?: string;
  /** False for everything while the password must be changed. */
  can(permission: Permission): boolean;
}

export interface PrincipalInput {
  kind: Principal['kind'];
  via: Principal['via'];
  user: UserRecord;
  permissions: ReadonlySet<Permission>;
  mustChangePassword: boolean;
  sessionId?: string;
  csrfToken?: string;
  apiKeyId?: string;
  expiresAt?: string;
}

export function createPrincipal(input: PrincipalInput): Principal {
  const { user, permissions, mustChangePassword } = input;
  return {
    kind: input.kind,
    via: input.via,
    userId: user.id,
    name: user.name,
    role: user.role,
    permissions,
    mustChangePassword,
    ...(input.sessionId === undefined ? {} : { sessionId: input.sessionId }),
    ...(input.csrfToken === undefined ? {} : { csrfToken: input.csrfToken }),
    ...(input.apiKeyId === undefined ? {} : { apiKeyId: input.apiKeyId }),
    ...(input.expiresAt === undefined ? {} : { expiresAt: input.expiresAt }),
    can: (permission) => !mustChangePassword && permissions.has(permission),
  };
}

/** A password must be replaced when it is older than `maxAgeMs` or someone else set it. */
export function passwordMustChange(user: StoredUser | UserRecord, now: Date, maxAgeMs: number): boolean {
  return user.passwordResetRequired || now.getTime() - Date.parse(user.passwordChangedAt) >= maxAgeMs;
}

/** What a password login's principal carries besides the user: its session, or its token's expiry. */
export type UserCredential = { session: { idHash: string; csrfToken: string } } | { tokenExpiresAt: string };

/** The principal of a password login: the role's full rights. */
export function userPrincipal(user: UserRecord, now: Date, maxAgeMs: number, credential: UserCredential): Principal {
  return createPrincipal({
    kind: 'user',
    via: 'session' in credential ? 'session' : 'jwt',
    user,
    permissions: permissionsOf(user.role),
    mustChangePassword: passwordMustChange(user, now, maxAgeMs),
    ...('session' in credential ? { sessionId: credential.session.idHash, csrfToken: credential.session.csrfToken } : { expiresAt: credential.tokenExpiresAt }),
  });
}

/** Where a request came from, as the audit trail records it. */
export interface ClientInfo {
  ip: string;
  userAgent: string | null;
}

/**
 * Who performs a management action. The CLI acts locally with the rights of whoever can open the
 * data dir; a request acts with its principal's rights, checked again here behind the route's check.
 */
export type Actor = { kind: 'local'; name: string } | { kind: 'request'; principal: Principal; client: ClientInfo };

/** The CLI as an actor, audited as `cli:<unix user>` from `local`. */
export function localActor(unixUser: string): Actor {
  return { kind: 'local', name: `cli:${unixUser}` };
}

export function requestActor(principal: Principal, client: ClientInfo): Actor {
  return { kind: 'request', principal, client };
}

export function actorName(actor: Actor): string {
  return actor.kind === 'local' ? actor.name : actor.principal.name;
}

type AuditWho = Pick<AuditEvent, 'user' | 'ip_address' | 'user_agent'> & { details: JsonObject };

/** The audit fields naming the actor, and details saying which key acted when one did. */
export function actorForAudit(actor: Actor, details: JsonObject = {}): AuditWho {
  if (actor.kind === 'local') return { user: actor.name, ip_address: 'local', user_agent: null, details };
  const { principal, client } = actor;
  return {
    user: actorName(actor),
    ip_address: client.ip,
    user_agent: client.userAgent,
    details: principal.apiKeyId === undefined ? details : { ...details, api_key_id: principal.apiKeyId },
  };
}

/** Refuses unless the actor holds `permission`; the CLI holds all. */
export function requirePermission(actor: Actor, permission: Permission): void {
  if (actor.kind === 'local') return;
  const { principal } = actor;
  if (principal.mustChangePassword) throw new PasswordChangeRequiredError();
  if (!principal.can(permission)) {
    throw new ForbiddenError('permission_denied', `${principal.name} lacks the ${permission} permission`, { permission });
  }
}
