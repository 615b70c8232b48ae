import type { UserRole } from './roles.js';

/** Users, API keys, sessions and login throttling as the auth services see them; the database stores them. */

export interface UserRecord {
  id: string;
  name: string;
  role: UserRole;
  disabled: boolean;
  passwordChangedAt: string;
  passwordResetRequired: boolean;
  credentialsVersion: number;
  createdAt: string;
  updatedAt: string;
  lastLoginAt: string | null;
}

/** A user with the password hash, for the few places that check a password. */
export interface StoredUser extends UserRecord {
  passwordHash: string;
}

/** The user without the hash: what listings and services hand out. */
export function publicUser(user: StoredUser): UserRecord {
  const { passwordHash: _hidden, ...rest } = user;
  return rest;
}

export interface ApiKeyRecord {
  id: string;
  userId: string;
  /** The owner's name, joined in for listings. */
  userName: string;
  /** The owner's role now, joined in: with the scopes it gives the key's rights. */
  userRole: UserRole;
  name: string;
  prefix: string;
  /** null: all of the owner's rights. */
  scopes: string[] | null;
  createdAt: string;
  createdBy: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  /** The key whose request created this one; null when a person or the CLI made it. */
  parentId: string | null;
}

/** A session is live while it was seen after `idleSince` and its absolute end is after `now`. */
export interface Liveness {
  now: Date;
  idleSince: Date;
}

/** Failed logins are counted, and locked out, per account name and per client address. */
const THROTTLE_SCOPES = ['account', 'address'] as const;
export type ThrottleScope = (typeof THROTTLE_SCOPES)[number];
