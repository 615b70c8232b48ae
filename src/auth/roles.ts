import { PERMISSIONS, type Permission } from './permissions.js';

export type { Permission };
export { PERMISSIONS };

export const USER_ROLES = ['admin', 'operator', 'viewer'] as const;
export type UserRole = (typeof USER_ROLES)[number];

/**
 * What each role may do; the one table every check reads (docs/security.md shows it). An operator
 * runs the drives and the jobs and sees the archive; changing or deleting archives, system settings
 * and users stays with admins. Everyone manages their own API keys (keys:manage).
 * @internal exported for its tests
 */
export const ROLE_PERMISSIONS: Readonly<Record<UserRole, readonly Permission[]>> = {
  admin: PERMISSIONS,
  operator: ['jobs:read', 'jobs:write', 'archives:read', 'devices:read', 'devices:write', 'system:read', 'metrics:read', 'keys:manage'],
  viewer: ['jobs:read', 'archives:read', 'devices:read', 'system:read', 'metrics:read', 'keys:manage'],
};

export function permissionsOf(role: UserRole): ReadonlySet<Permission> {
  return new Set(ROLE_PERMISSIONS[role]);
}

export function isRole(value: string): value is UserRole {
  return (USER_ROLES as readonly string[]).includes(value);
}

export function isPermission(value: string): value is Permission {
  return (PERMISSIONS as readonly string[]).includes(value);
}
