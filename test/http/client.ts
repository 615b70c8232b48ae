import { setTimeout as sleep } from 'node:timers/promises';
import { localActor } from '../../src/auth/principal.js';
import type { AuthService } from '../../src/auth/service.js';

/**
 * The HTTP client side of the service tests, without the engine switch (test/support/database.ts):
 * test files about what only the embedded database has (backups of its file) import this module
 * alone, and so stay out of the PostgreSQL pass. ./support.ts re-exports what every test needs.
 */

/** Meets the password policy; test users all have it. */
export const TEST_PASSWORD = 'Correct-Horse-42';
export const TEST_ADMIN = 'test-admin';

/**
 * The environment of a test service on the embedded database: its own data dir, only the given
 * sources, fast map saves. Services on the engine of the pass take testEnv of ./support.ts.
 */
export function embeddedTestEnv(dataDir: string, extraDevices: string[], more: Record<string, string> = {}): Record<string, string> {
  return {
    DISK2ISO_DATA_DIR: dataDir,
    DISK2ISO_EXTRA_DEVICES: extraDevices.join(','),
    DISK2ISO_DRIVES_DEMO: 'off',
    DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
    DISK2ISO_IMAGING_MAP_SAVE_INTERVAL_SECONDS: '1',
    // A backup at every start would only slow the tests down; test/cli/backup.test.ts turns them on.
    DISK2ISO_BACKUP_INTERVAL_HOURS: '0',
    // Tests fire requests far faster than a person; the limits themselves have their own tests.
    DISK2ISO_SECURITY_RATE_LIMIT_PER_SECOND: '100000',
    DISK2ISO_SECURITY_RATE_LIMIT_BURST: '100000',
    DISK2ISO_SECURITY_LOGIN_RATE_PER_MINUTE: '100000',
    DISK2ISO_SECURITY_LOGIN_RATE_BURST: '100000',
    ...more,
  };
}

/** The admin key of each listening test service, by its URL, so `api(url, …)` can sign requests in. */
export const adminKeys = new Map<string, string>();

/** Makes `api(url, …)` sign in with `key` (for services started as their own process). */
export function useApiKey(url: string, key: string): void {
  adminKeys.set(url, key);
}

/** A new API key of the test admin, who is added first when missing. */
export async function adminKey(auth: AuthService): Promise<string> {
  const test = localActor('test');
  if ((await auth.users.list(test)).every((user) => user.name !== TEST_ADMIN)) {
    await auth.users.add({ name: TEST_ADMIN, role: 'admin', password: TEST_PASSWORD }, test);
  }
  return (await auth.apiKeys.create({ user: TEST_ADMIN, name: 'tests' }, test)).key;
}

/** The test admin's key for the service at `url`, as headers (for raw fetch calls). */
export function authHeadersFor(url: string): Record<string, string> {
  const key = adminKeys.get(url);
  return key === undefined ? {} : { 'x-api-key': key };
}

function hasCredentials(headers: Record<string, string>): boolean {
  return Object.keys(headers).some((name) => ['x-api-key', 'authorization', 'cookie'].includes(name.toLowerCase()));
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/**
 * One JSON request as the test admin (unless `headers` bring credentials of their own); the body is
 * parsed when the answer is JSON. `any` by default because tests read bodies field by field; the
 * contract tests check their shapes against the specification.
 */
// biome-ignore lint/suspicious/noExplicitAny: tests read bodies field by field (see above)
export async function api<T = any>(url: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
  const key = adminKeys.get(url);
  return anonymousApi<T>(url, method, path, body, hasCredentials(headers) || key === undefined ? headers : { 'x-api-key': key, ...headers });
}

/** One JSON request with exactly the given headers: no credentials unless they carry some (`any` as for `api`). */
// biome-ignore lint/suspicious/noExplicitAny: as for `api`
export async function anonymousApi<T = any>(
  url: string,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<ApiResponse<T>> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await response.text();
  const isJson = (response.headers.get('content-type') ?? '').includes('application/json');
  return { status: response.status, headers: response.headers, body: (isJson && text !== '' ? JSON.parse(text) : text) as T };
}

/** Polls until `check` is true; the bound only keeps a broken run from hanging, it is no speed requirement. */
export async function waitFor(what: string, check: () => Promise<boolean> | boolean, attempts = 1200): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}
