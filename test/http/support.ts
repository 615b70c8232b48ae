import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { createAuthService } from '../../src/auth/service.js';
import { loadConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { type RunningServer, type StartServerOptions, startServer } from '../../src/server.js';
import { createTestDataDir, databaseEnv, openDataDirDatabase, removeTestDataDir } from '../support/database.js';
import { adminKey, adminKeys, api, embeddedTestEnv, waitFor } from './client.js';
import type { LiveClient, ReceivedLiveMessage } from './live-client.js';

export { TEST_ADMIN, TEST_PASSWORD, anonymousApi, api, authHeadersFor, useApiKey, waitFor } from './client.js';
export { type LiveClient, type ReceivedLiveMessage, followEvents } from './live-client.js';

const VERSION = '0.0.0-test';

/**
 * The environment every test service gets: embeddedTestEnv, and in the PostgreSQL pass the data
 * dir's database as database.url (the dir must come from createTestDataDir or attachTestDatabase).
 */
export function testEnv(dataDir: string, extraDevices: string[], more: Record<string, string> = {}): Record<string, string> {
  return embeddedTestEnv(dataDir, extraDevices, { ...databaseEnv(dataDir), ...more });
}

export interface TestServer {
  server: RunningServer;
  /** `http://127.0.0.1:PORT` */
  url: string;
  dataDir: string;
  outputDir: string;
  /** An API key of the admin `test-admin` ('' with `withoutAdmin`); `api()` sends it unless the request brings its own credentials. */
  apiKey: string;
  /** `{ 'x-api-key': apiKey }`, for app.inject and raw fetch calls. */
  authHeaders: Record<string, string>;
  close(): Promise<void>;
}

/**
 * Creates the test admin and an API key for it in a data dir, the way the CLI does, before or
 * without a running service.
 */
export async function createAdminKey(dataDir: string): Promise<string> {
  const database = await openDataDirDatabase(dataDir);
  try {
    return await adminKey(createAuthService({ database, dataDir }));
  } finally {
    await database.close();
  }
}

export interface TestServerOptions {
  /** Block devices or image files offered as drives. */
  devices?: string[];
  /** More DISK2ISO_* variables. */
  env?: Record<string, string>;
  /** An existing data dir of createTestDataDir (a restart); default a fresh one, removed on close. */
  dataDir?: string;
  listen?: boolean;
  live?: StartServerOptions['live'];
  drives?: StartServerOptions['drives'];
  onSetupLink?: StartServerOptions['onSetupLink'];
  notifications?: StartServerOptions['notifications'];
  storage?: StartServerOptions['storage'];
  archive?: StartServerOptions['archive'];
  /** Leave the user table empty (no test admin, no key): the first-admin setup path. */
  withoutAdmin?: boolean;
}

/** A real service in this process: real database (SQLite file, or PostgreSQL in that pass), real drives, real engine, real HTTP on 127.0.0.1:0. */
export async function startTestServer(options: TestServerOptions = {}): Promise<TestServer> {
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await createTestDataDir('disk2iso-http-'));
  const env = testEnv(dataDir, options.devices ?? [], { DISK2ISO_SERVER_PORT: '0', ...options.env });
  const config = loadConfig({ env });
  const server = await startServer({
    config,
    log: silentLogger(),
    version: VERSION,
    listen: options.listen ?? true,
    ...(options.live ? { live: options.live } : {}),
    ...(options.drives ? { drives: options.drives } : {}),
    ...(options.onSetupLink ? { onSetupLink: options.onSetupLink } : {}),
    ...(options.notifications ? { notifications: options.notifications } : {}),
    ...(options.storage ? { storage: options.storage } : {}),
    ...(options.archive ? { archive: options.archive } : {}),
  });
  const key = options.withoutAdmin === true ? '' : await adminKey(server.auth);
  const url = server.url ?? '';
  if (url !== '' && key !== '') adminKeys.set(url, key);
  return {
    server,
    url,
    dataDir,
    outputDir: config.storage.output_dir,
    apiKey: key,
    authHeaders: { 'x-api-key': key },
    async close() {
      adminKeys.delete(url);
      await server.close('test finished');
      if (ownDir) await removeTestDataDir(dataDir);
    },
  };
}

/**
 * Asks for a verification (202 at once, a task to follow) and waits for its task to finish; returns
 * the finished task. `headers` as for `api`.
 */
// biome-ignore lint/suspicious/noExplicitAny: as for `api`
export async function verifyArchive(url: string, archiveId: string, headers: Record<string, string> = {}): Promise<any> {
  const accepted = await api(url, 'POST', `/api/v1/archives/${archiveId}/verify`, undefined, headers);
  assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
  assert.equal(accepted.headers.get('location'), `/api/v1/archives/verification-tasks/${accepted.body.task.id}`);
  let task = accepted.body.task;
  await waitFor(`verification task ${task.id} to finish`, async () => {
    task = (await api(url, 'GET', `/api/v1/archives/verification-tasks/${accepted.body.task.id}`)).body;
    return ['completed', 'failed', 'cancelled'].includes(task.status);
  });
  return task;
}

/** Asks for a WebSocket on /api/v1/ws/jobs with these headers: 101 when it opened (and is closed again), else the refusal's status. */
export function webSocketUpgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/ws/jobs`, { headers });
    socket.on('unexpected-response', (request, response) => {
      request.destroy();
      resolve(response.statusCode ?? 0);
    });
    socket.on('upgrade', () => {
      socket.close();
      resolve(101);
    });
    socket.on('error', () => undefined);
  });
}

/** A WebSocket client on /api/v1/ws/jobs that keeps every message. */
export function followWebSocket(url: string): Promise<LiveClient & { socket: WebSocket }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/ws/jobs`, { headers: { 'x-api-key': adminKeys.get(url) ?? '' } });
    const client = { messages: [] as ReceivedLiveMessage[], comments: [], eventNames: [], socket, close: () => socket.close() };
    socket.on('message', (data) => client.messages.push(JSON.parse(String(data)) as ReceivedLiveMessage));
    socket.once('open', () => resolve(client));
    socket.once('error', reject);
  });
}

/**
 * Asserts `actual` has every field of the specification's `example` with the same JSON type
 * (nullable fields may be null). Extra fields in `actual` are allowed: the contract names a minimum.
 */
export function assertMatchesExample(actual: unknown, example: unknown, nullable: ReadonlySet<string> = new Set(), path = '$'): void {
  if (example === null) return;
  if (Array.isArray(example)) {
    assert.ok(Array.isArray(actual), `${path} is an array`);
    assert.ok(actual.length > 0, `${path} has entries to compare`);
    for (const [index, item] of actual.entries()) assertMatchesExample(item, example[0], nullable, `${path}[${index}]`);
    return;
  }
  if (typeof example === 'object') {
    assert.ok(typeof actual === 'object' && actual !== null && !Array.isArray(actual), `${path} is an object`);
    for (const [key, child] of Object.entries(example as object)) {
      const childPath = `${path}.${key}`;
      assert.ok(key in (actual as object), `${childPath} is present`);
      const value = (actual as Record<string, unknown>)[key];
      if (value === null && nullable.has(key)) continue;
      assertMatchesExample(value, child, nullable, childPath);
    }
    return;
  }
  assert.equal(typeof actual, typeof example, `${path} is a ${typeof example}`);
}
