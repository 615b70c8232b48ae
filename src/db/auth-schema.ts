import type { Generated } from 'kysely';
import type { ThrottleScope } from '../auth/model.js';
import type { UserRole } from '../auth/roles.js';

/**
 * Tables of users, credentials, login throttling and the audit trail (migration 0002). Secrets are
 * never stored: passwords as bcrypt hashes, session ids, API keys and setup tokens as SHA-256 hex.
 */

export interface UsersTable {
  id: string;
  name: string;
  role: UserRole;
  password_hash: string;
  password_changed_at: string;
  /** 0 or 1: set when someone else chose the password, so its owner must replace it at the next login. */
  password_reset_required: number;
  /** 0 or 1 */
  disabled: number;
  /** Bumped on password change, disable and role change; tokens carrying an older value are refused. */
  credentials_version: number;
  created_at: string;
  updated_at: string;
  last_login_at: string | null;
}

export interface SessionsTable {
  /** SHA-256 of the session id the cookie carries. */
  id_hash: string;
  user_id: string;
  csrf_token: string;
  created_at: string;
  last_seen_at: string;
  /** The absolute end, whatever the activity. */
  expires_at: string;
  ip_address: string | null;
  user_agent: string | null;
}

export interface ApiKeysTable {
  id: string;
  user_id: string;
  name: string;
  /** The first characters of the key, shown in listings so a person can tell keys apart. */
  prefix: string;
  key_hash: string;
  /** JSON array of permissions, or null: all of the owner's rights. */
  scopes: string | null;
  created_at: string;
  created_by: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  /** The key whose request created this one (migration 0006); revoking it revokes this one. Null when a person or the CLI made it. */
  parent_id: string | null;
}

interface LoginFailuresTable {
  id: Generated<number>;
  scope: ThrottleScope;
  /** The normalised account name, or the client address. */
  key: string;
  at: string;
}

interface LockoutsTable {
  scope: ThrottleScope;
  key: string;
  locked_at: string;
  until: string;
}

interface SetupTokensTable {
  token_hash: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
}

export interface AuditLogTable {
  id: Generated<number>;
  timestamp: string;
  event_type: string;
  action: string;
  user: string | null;
  ip_address: string | null;
  user_agent: string | null;
  /** JSON object */
  details: string;
}

export interface AuthTables {
  users: UsersTable;
  sessions: SessionsTable;
  api_keys: ApiKeysTable;
  login_failures: LoginFailuresTable;
  lockouts: LockoutsTable;
  setup_tokens: SetupTokensTable;
  audit_log: AuditLogTable;
}
