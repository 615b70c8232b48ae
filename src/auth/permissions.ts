/**
 * Everything a principal can be allowed to do. Routes declare one of these; roles and API-key scopes
 * are sets of them. It lives with auth (not HTTP) because the CLI and services check it too.
 */
export const PERMISSIONS = [
  'jobs:read',
  'jobs:write',
  'archives:read',
  'archives:write',
  'devices:read',
  'devices:write',
  'system:read',
  'system:write',
  'users:admin',
] as const;
export type Permission = (typeof PERMISSIONS)[number];
