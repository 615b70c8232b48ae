import type { ApiKeyRecord, UserRecord } from './model.js';
import type { Permission } from './permissions.js';
import type { UserRole } from './roles.js';
import { isPermission } from './roles.js';

/** How the API and `--json` output show users and keys: snake_case, no hashes, no secrets. */

export type UserView = {
  id: string;
  name: string;
  role: UserRole;
  disabled: boolean;
  password_changed_at: string;
  password_reset_required: boolean;
  created_at: string;
  updated_at: string;
  last_login_at: string | null;
};

export type ApiKeyView = {
  id: string;
  name: string;
  user: string;
  prefix: string;
  scopes: Permission[] | null;
  status: ApiKeyStatus;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  parent_id: string | null;
};

export function userView(user: UserRecord): UserView {
  return {
    id: user.id,
    name: user.name,
    role: user.role,
    disabled: user.disabled,
    password_changed_at: user.passwordChangedAt,
    password_reset_required: user.passwordResetRequired,
    created_at: user.createdAt,
    updated_at: user.updatedAt,
    last_login_at: user.lastLoginAt,
  };
}

export type ApiKeyStatus = 'active' | 'expired' | 'revoked';

export function apiKeyStatus(key: ApiKeyRecord, now: Date): ApiKeyStatus {
  if (key.revokedAt !== null) return 'revoked';
  if (key.expiresAt !== null && Date.parse(key.expiresAt) <= now.getTime()) return 'expired';
  return 'active';
}

export function apiKeyView(key: ApiKeyRecord, now: Date): ApiKeyView {
  return {
    id: key.id,
    name: key.name,
    user: key.userName,
    prefix: key.prefix,
    scopes: key.scopes === null ? null : key.scopes.filter(isPermission),
    status: apiKeyStatus(key, now),
    created_at: key.createdAt,
    created_by: key.createdBy,
    expires_at: key.expiresAt,
    revoked_at: key.revokedAt,
    last_used_at: key.lastUsedAt,
    parent_id: key.parentId,
  };
}
