import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { localActor } from '../../src/auth/principal.js';
import { type App, buildApp } from '../../src/http/app.js';
import type { RoutePermission } from '../../src/http/permissions.js';
import { silentLogger } from '../../src/log.js';
import { TEST_PASSWORD, type TestServer, anonymousApi, api, startTestServer } from './support.js';

/** The permission of every API route. A change here is a security decision and must be deliberate. */
const EXPECTED_ROUTES: Array<[string, string, RoutePermission]> = [
  ['GET', '/api/v1/openapi.json', 'public'],
  ['GET', '/api/v1/health', 'public'],
  ['GET', '/api/v1/health/ready', 'public'],
  ['GET', '/api/v1/jobs', 'jobs:read'],
  ['POST', '/api/v1/jobs', 'jobs:write'],
  ['GET', '/api/v1/jobs/:job_id', 'jobs:read'],
  ['PATCH', '/api/v1/jobs/:job_id', 'jobs:write'],
  ['DELETE', '/api/v1/jobs/:job_id', 'jobs:write'],
  ['GET', '/api/v1/jobs/:job_id/logs', 'jobs:read'],
  ['GET', '/api/v1/jobs/:job_id/map', 'jobs:read'],
  ['POST', '/api/v1/jobs/:job_id/retry-bad-areas', 'jobs:write'],
  ['GET', '/api/v1/archives', 'archives:read'],
  ['GET', '/api/v1/archives/:archive_id', 'archives:read'],
  ['PATCH', '/api/v1/archives/:archive_id', 'archives:write'],
  ['DELETE', '/api/v1/archives/:archive_id', 'archives:write'],
  ['GET', '/api/v1/archives/:archive_id/download', 'archives:read'],
  ['HEAD', '/api/v1/archives/:archive_id/download', 'archives:read'],
  ['POST', '/api/v1/archives/:archive_id/verify', 'archives:write'],
  ['POST', '/api/v1/archives/verify', 'archives:write'],
  ['GET', '/api/v1/archives/verification-tasks', 'archives:read'],
  ['GET', '/api/v1/archives/verification-tasks/:task_id', 'archives:read'],
  ['DELETE', '/api/v1/archives/verification-tasks/:task_id', 'archives:write'],
  ['GET', '/api/v1/archives/:archive_id/verifications', 'archives:read'],
  ['GET', '/api/v1/archives/search', 'archives:read'],
  ['GET', '/api/v1/archives/files/search', 'archives:read'],
  ['GET', '/api/v1/archives/:archive_id/files', 'archives:read'],
  ['GET', '/api/v1/archives/:archive_id/files/content', 'archives:read'],
  ['GET', '/api/v1/archives/:archive_id/files/archive', 'archives:read'],
  ['POST', '/api/v1/archives/bulk-edit', 'archives:write'],
  ['GET', '/api/v1/archives/export', 'archives:read'],
  ['POST', '/api/v1/archives/import', 'archives:write'],
  ['GET', '/api/v1/archive-categories', 'archives:read'],
  ['POST', '/api/v1/archive-categories', 'system:write'],
  ['PATCH', '/api/v1/archive-categories/:category_id', 'system:write'],
  ['DELETE', '/api/v1/archive-categories/:category_id', 'system:write'],
  ['POST', '/api/v1/archives/:archive_id/recovery', 'archives:write'],
  ['POST', '/api/v1/archives/:archive_id/repair', 'archives:write'],
  ['POST', '/api/v1/archives/adopt', 'system:write'],
  ['GET', '/api/v1/archives/maintenance-tasks', 'archives:read'],
  ['GET', '/api/v1/archives/maintenance-tasks/:task_id', 'archives:read'],
  ['DELETE', '/api/v1/archives/maintenance-tasks/:task_id', 'archives:write'],
  ['GET', '/api/v1/devices', 'devices:read'],
  ['GET', '/api/v1/devices/:device/automation', 'system:read'],
  ['PUT', '/api/v1/devices/:device/automation', 'system:write'],
  ['POST', '/api/v1/devices/:device/eject', 'devices:write'],
  ['GET', '/api/v1/system/status', 'system:read'],
  ['GET', '/api/v1/system/config', 'system:read'],
  ['GET', '/api/v1/system/nodes', 'system:read'],
  ['PATCH', '/api/v1/system/config', 'system:write'],
  ['GET', '/api/v1/logs', 'system:read'],
  ['GET', '/api/v1/ws/jobs', 'jobs:read'],
  ['GET', '/api/v1/events', 'jobs:read'],
  ['POST', '/api/v1/auth/login', 'public'],
  ['POST', '/api/v1/auth/logout', 'authenticated'],
  ['GET', '/api/v1/auth/me', 'authenticated'],
  ['PUT', '/api/v1/auth/password', 'authenticated'],
  ['POST', '/api/v1/auth/token', 'public'],
  ['GET', '/api/v1/auth/setup', 'public'],
  ['POST', '/api/v1/auth/setup', 'public'],
  ['GET', '/api/v1/users', 'users:admin'],
  ['POST', '/api/v1/users', 'users:admin'],
  ['GET', '/api/v1/users/:name', 'users:admin'],
  ['PATCH', '/api/v1/users/:name', 'users:admin'],
  ['DELETE', '/api/v1/users/:name', 'users:admin'],
  ['POST', '/api/v1/users/:name/password', 'users:admin'],
  ['GET', '/api/v1/api-keys', 'keys:manage'],
  ['POST', '/api/v1/api-keys', 'keys:manage'],
  ['DELETE', '/api/v1/api-keys/:id', 'keys:manage'],
  ['GET', '/api/v1/audit', 'users:admin'],
  ['GET', '/api/v1/notifications/webhooks', 'system:read'],
  ['POST', '/api/v1/notifications/webhooks', 'system:write'],
  ['PATCH', '/api/v1/notifications/webhooks/:id', 'system:write'],
  ['DELETE', '/api/v1/notifications/webhooks/:id', 'system:write'],
  ['POST', '/api/v1/notifications/webhooks/:id/test', 'system:write'],
  ['POST', '/api/v1/notifications/email/test', 'system:write'],
  ['GET', '/api/v1/notifications/deliveries', 'system:read'],
  ['GET', '/api/v1/notifications/mqtt', 'system:read'],
  ['GET', '/api/v1/notifications/push/key', 'jobs:read'],
  ['GET', '/api/v1/notifications/push/subscriptions', 'jobs:read'],
  ['POST', '/api/v1/notifications/push/subscriptions', 'jobs:read'],
  ['DELETE', '/api/v1/notifications/push/subscriptions/:id', 'jobs:read'],
];

describe('the API app: permissions, the authorization seam, errors, shutdown', () => {
  let service: TestServer;
  let viewerKey: string;

  before(async () => {
    service = await startTestServer();
    const test = localActor('test');
    await service.server.auth.users.add({ name: 'watcher', role: 'viewer', password: TEST_PASSWORD }, test);
    viewerKey = (await service.server.auth.apiKeys.create({ user: 'watcher', name: 'viewer key' }, test)).key;
  });
  after(async () => {
    await service?.close();
  });

  it('declares exactly the expected permission on every API route', () => {
    const declared = service.server.routeTable
      .filter((route) => route.url.startsWith('/api/v1/') && !(route.method === 'HEAD' && route.url !== '/api/v1/archives/:archive_id/download'))
      .map((route) => [route.method, route.url, route.permission]);
    assert.deepEqual(
      [...declared].sort((a, b) => `${a[1]} ${a[0]}`.localeCompare(`${b[1]} ${b[0]}`)),
      [...EXPECTED_ROUTES].sort((a, b) => `${a[1]} ${a[0]}`.localeCompare(`${b[1]} ${b[0]}`)),
    );
    for (const route of service.server.routeTable.filter((entry) => entry.url.startsWith('/api/v1/'))) {
      assert.notEqual(route.permission, undefined, `${route.method} ${route.url}`);
    }
  });

  it('passes every request through the guard: 401 without credentials, 403 without the permission, before the body is read', async () => {
    assert.equal((await anonymousApi(service.url, 'GET', '/api/v1/health')).status, 200, 'the health check is public');
    const anonymous = await anonymousApi(service.url, 'GET', '/api/v1/jobs?limit=1');
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.body.error.code, 'unauthenticated');
    assert.match(String(anonymous.headers.get('www-authenticate')), /^Bearer/);
    assert.equal((await api(service.url, 'GET', '/api/v1/jobs?limit=1')).status, 200);

    const viewer = { 'x-api-key': viewerKey };
    const denied = await api(service.url, 'POST', '/api/v1/jobs', { device: 'nothing' }, viewer);
    assert.equal(denied.status, 403);
    assert.deepEqual(denied.body, {
      error: { code: 'permission_denied', message: 'watcher lacks the jobs:write permission', details: { permission: 'jobs:write' } },
    });
    const deniedBeforeValidation = await api(service.url, 'POST', '/api/v1/jobs', { wrong: true }, viewer);
    assert.equal(deniedBeforeValidation.status, 403, 'refused before the body is looked at');
    const anonymousBeforeValidation = await anonymousApi(service.url, 'POST', '/api/v1/jobs', { wrong: true });
    assert.equal(anonymousBeforeValidation.status, 401);

    const sse = await fetch(`${service.url}/api/v1/events`);
    assert.equal(sse.status, 401, 'the SSE stream is guarded too');
    await sse.body?.cancel();
    const wsStatus = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(`${service.url.replace('http', 'ws')}/api/v1/ws/jobs`, { headers: { 'x-api-key': 'd2i_not-a-real-key' } });
      socket.on('unexpected-response', (request, response) => {
        // With this listener, ending the refused request is up to us (ws leaves it open).
        request.destroy();
        resolve(response.statusCode ?? 0);
      });
      socket.on('open', () => reject(new Error('the WebSocket opened without valid credentials')));
      socket.on('error', () => undefined);
    });
    assert.equal(wsStatus, 401, 'the WebSocket upgrade is guarded too');
  });

  it('serves the OpenAPI document and the interactive docs', async () => {
    const document = await api(service.url, 'GET', '/api/v1/openapi.json');
    assert.equal(document.status, 200);
    assert.equal(document.body.openapi, '3.1.0');
    const documented = Object.entries(document.body.paths as Record<string, Record<string, unknown>>).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`),
    );
    for (const [method, url] of EXPECTED_ROUTES) {
      if (url === '/api/v1/openapi.json') continue;
      assert.ok(documented.includes(`${method} ${url}`), `${method} ${url} is documented`);
    }
    for (const operations of Object.values(document.body.paths as Record<string, Record<string, { summary?: string; tags?: string[] }>>)) {
      for (const operation of Object.values(operations)) {
        assert.ok(operation.summary, 'every operation has a summary');
        assert.ok(operation.tags?.length, 'and a tag');
      }
    }
    const docs = await fetch(`${service.url}/api/docs/static/index.html`);
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger/i);
  });

  it('refuses a route without a declared permission at build time', async () => {
    await assert.rejects(
      buildApp({ version: 'x', logger: silentLogger(), routes: [(app: App) => void app.get('/api/v1/forgotten', async () => ({}))] }),
      /GET \/api\/v1\/forgotten declares no permission/,
    );
  });

  it('answers an unexpected failure with 500 and no internals, and reports it', async () => {
    const reported: unknown[] = [];
    const { app } = await buildApp({
      version: 'x',
      logger: silentLogger(),
      onServerError: (error) => reported.push(error),
      routes: [
        (scope: App) =>
          void scope.get('/api/v1/broken', { config: { permission: 'public' } }, async () => {
            throw new TypeError('secret path /var/lib/disk2iso/x exploded');
          }),
      ],
    });
    try {
      const response = await app.inject({ method: 'GET', url: '/api/v1/broken' });
      assert.equal(response.statusCode, 500);
      assert.deepEqual(response.json(), { error: { code: 'internal_error', message: 'internal error' } });
      assert.equal(reported.length, 1);
    } finally {
      await app.close();
    }
  });

  it('refuses new requests with 503 while shutting down', async () => {
    let accepting = true;
    const { app } = await buildApp({
      version: 'x',
      logger: silentLogger(),
      accepting: () => accepting,
      routes: [(scope: App) => void scope.get('/api/v1/ping', { config: { permission: 'public' } }, async () => ({ pong: true }))],
    });
    try {
      assert.equal((await app.inject({ method: 'GET', url: '/api/v1/ping' })).statusCode, 200);
      accepting = false;
      const refused = await app.inject({ method: 'GET', url: '/api/v1/ping' });
      assert.equal(refused.statusCode, 503);
      assert.equal(refused.json().error.code, 'shutting_down');
    } finally {
      await app.close();
    }
  });
});
