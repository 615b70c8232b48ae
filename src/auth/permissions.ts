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
  // Reading GET /metrics (Prometheus): counts and states the status and job views show, no names or paths.
  'metrics:read',
  // Creating, listing and revoking API keys. Every role holds it for its own keys; a key or a bearer
  // token needs it in its scope, so a key made for reading jobs cannot mint or revoke keys.
  'keys:manage',
  'users:admin',
] as const;
export type Permission = (typeof PERMISSIONS)[number];
