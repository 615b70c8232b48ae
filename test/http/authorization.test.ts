import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { PERMISSIONS, type Permission, permissionsOf } from '../../src/auth/roles.js';
import { createAuthService } from '../../src/auth/service.js';
import type { DeclaredRoute } from '../../src/http/permissions.js';
import { openDataDirDatabase } from '../support/database.js';
import { makeIso } from '../tools/iso.js';
import { TEST_PASSWORD, type TestServer, anonymousApi, api, startTestServer, verifyArchive, waitFor, webSocketUpgradeStatus } from './support.js';

/**
 * The authorization matrix. Every route of the live route table (not a hand-picked list) is called
 * by every kind of caller, and must answer exactly: 401 for no or dead credentials, 403 for a
 * caller without the route's permission, and the route's own answer otherwise. A route added
 * without a sample request here fails the suite, so nothing new escapes the matrix.
 */

interface Caller {
  label: string;
  /** False: no credentials, or credentials that must not work (expired, revoked, tampered, outdated). */
  valid: boolean;
  /** `user`: a password sign-in (session or its token); `api_key`: a key. */
  kind: 'none' | 'user' | 'api_key';
  /** The user it acts for. */
  user: string;
  permissions: ReadonlySet<Permission>;
  headers: Record<string, string>;
}

interface Sample {
  /** The path to call, parameters filled in; may create what the call needs first. */
  prepare(caller: Caller): Promise<{ path: string; body?: unknown }>;
  /** What the route answers a caller that passed the guard. */
  expect(caller: Caller): number;
}

const constant = (status: number) => () => status;

describe('authorization matrix: every route x every kind of caller', () => {
  let work: string;
  let service: TestServer;
  let scratchDevice: string;
  const callers: Caller[] = [];
  /** Callers whose access depends on the route's permission: the keys with and without its scope. */
  const scopedKey = new Map<Permission, string>();
  let sharedJob: string;
  let sharedArchive: string;
  let sharedTask: string;
  let counter = 0;
  const unique = (prefix: string) => `${prefix}${++counter}`;
  const newCategory = async (): Promise<string> => (await api(service.url, 'POST', '/api/v1/archive-categories', { name: unique('category ') })).body.id;

  async function finishedJob(): Promise<{ id: string; archive: string }> {
    const created = await api(service.url, 'POST', '/api/v1/jobs', { device: scratchDevice, name: unique('MATRIX_') });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    let job: { status: string; archive_id: string | null } = created.body;
    await waitFor('a fixture job to finish', async () => {
      job = (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body;
      return job.status === 'completed';
    });
    return { id: created.body.id as string, archive: job.archive_id ?? '' };
  }

  /** Waits until the scratch drive is free again (a job a caller created has ended). */
  async function driveIdle(): Promise<void> {
    await waitFor('the scratch drive to be idle', async () => {
      const active = await api(service.url, 'GET', '/api/v1/jobs?status=queued,running,verifying,paused&limit=50');
      for (const job of active.body.jobs as Array<{ id: string; status: string }>) {
        if (job.status === 'paused' || job.status === 'queued') await api(service.url, 'PATCH', `/api/v1/jobs/${job.id}`, { action: 'cancel' });
      }
      return active.body.total === 0;
    });
  }

  /** Waits until the shared archive has no queued or running verification (one archive has at most one). */
  async function verificationIdle(): Promise<void> {
    await waitFor('the shared archive to have no verification running', async () => {
      const active = await api(service.url, 'GET', `/api/v1/archives/verification-tasks?archive_id=${sharedArchive}&status=queued,running`);
      return active.body.total === 0;
    });
  }

  /** A webhook endpoint that sends nothing (disabled, to a public name): what the matrix may change or delete. */
  async function disabledEndpoint(): Promise<string> {
    const created = await api(service.url, 'POST', '/api/v1/notifications/webhooks', {
      name: unique('matrix hook '),
      url: 'https://hooks.example.org/',
      events: [],
      enabled: false,
    });
    return created.body.webhook.id as string;
  }

  /** A browser's subscription to a push service at `localhost` (allowed by the service's push_allowed_hosts; nothing listens there). */
  const pushBody = (device: string) => ({
    endpoint: `https://localhost/push/${encodeURIComponent(device)}`,
    keys: { p256dh: Buffer.concat([Buffer.from([4]), Buffer.alloc(64, 7)]).toString('base64url'), auth: Buffer.alloc(16, 9).toString('base64url') },
    label: 'matrix device',
    events: ['job.failed'],
  });

  async function userWithPassword(role: 'viewer' | 'operator' | 'admin'): Promise<string> {
    const name = unique(`tmp-${role}-`);
    await service.server.auth.users.add({ name, role, password: TEST_PASSWORD, requireChange: false }, localActor('test'));
    return name;
  }

  const samples: Record<string, Sample> = {
    'GET /api/v1/openapi.json': { prepare: async () => ({ path: '/api/v1/openapi.json' }), expect: constant(200) },
    'GET /api/v1/health': { prepare: async () => ({ path: '/api/v1/health' }), expect: constant(200) },
    'GET /api/v1/health/ready': { prepare: async () => ({ path: '/api/v1/health/ready' }), expect: constant(200) },
    'GET /api/v1/jobs': { prepare: async () => ({ path: '/api/v1/jobs?limit=5' }), expect: constant(200) },
    'POST /api/v1/jobs': {
      prepare: async () => {
        await driveIdle();
        return { path: '/api/v1/jobs', body: { device: scratchDevice, name: unique('POSTED_') } };
      },
      expect: constant(201),
    },
    'GET /api/v1/jobs/:job_id': { prepare: async () => ({ path: `/api/v1/jobs/${sharedJob}` }), expect: constant(200) },
    // A finished job's priority no longer matters: reaching the handler shows as its refusal.
    'PATCH /api/v1/jobs/:job_id': { prepare: async () => ({ path: `/api/v1/jobs/${sharedJob}`, body: { priority: 'high' } }), expect: constant(409) },
    'DELETE /api/v1/jobs/:job_id': {
      prepare: async () => {
        await driveIdle();
        return { path: `/api/v1/jobs/${(await finishedJob()).id}` };
      },
      expect: constant(204),
    },
    'GET /api/v1/jobs/:job_id/logs': { prepare: async () => ({ path: `/api/v1/jobs/${sharedJob}/logs` }), expect: constant(200) },
    'GET /api/v1/jobs/:job_id/map': { prepare: async () => ({ path: `/api/v1/jobs/${sharedJob}/map` }), expect: constant(200) },
    // The shared job read every sector: nothing to retry, whoever asks.
    'POST /api/v1/jobs/:job_id/retry-bad-areas': {
      prepare: async () => ({ path: `/api/v1/jobs/${sharedJob}/retry-bad-areas`, body: {} }),
      expect: constant(409),
    },
    'GET /api/v1/archives': { prepare: async () => ({ path: '/api/v1/archives' }), expect: constant(200) },
    'GET /api/v1/archives/:archive_id': { prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}` }), expect: constant(200) },
    'PATCH /api/v1/archives/:archive_id': {
      prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}`, body: { metadata: { notes: 'checked' } } }),
      expect: constant(200),
    },
    'DELETE /api/v1/archives/:archive_id': {
      prepare: async () => {
        await driveIdle();
        return { path: `/api/v1/archives/${(await finishedJob()).archive}` };
      },
      expect: constant(204),
    },
    'GET /api/v1/archives/:archive_id/download': { prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/download` }), expect: constant(200) },
    'HEAD /api/v1/archives/:archive_id/download': { prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/download` }), expect: constant(200) },
    'GET /api/v1/archives/:archive_id/files': { prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/files?path=data` }), expect: constant(200) },
    'GET /api/v1/archives/:archive_id/files/content': {
      prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/files/content?path=readme.txt` }),
      expect: constant(200),
    },
    'HEAD /api/v1/archives/:archive_id/files/content': {
      prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/files/content?path=readme.txt` }),
      expect: constant(200),
    },
    'GET /api/v1/archives/:archive_id/files/archive': {
      prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/files/archive?path=data` }),
      expect: constant(200),
    },
    'GET /api/v1/archives/files/search': { prepare: async () => ({ path: '/api/v1/archives/files/search?q=readme' }), expect: constant(200) },
    'POST /api/v1/archives/:archive_id/verify': {
      prepare: async () => {
        await verificationIdle();
        return { path: `/api/v1/archives/${sharedArchive}/verify` };
      },
      expect: constant(202),
    },
    'POST /api/v1/archives/verify': {
      prepare: async () => {
        await verificationIdle();
        return { path: '/api/v1/archives/verify', body: { ids: [sharedArchive] } };
      },
      expect: constant(202),
    },
    'GET /api/v1/archives/verification-tasks': { prepare: async () => ({ path: '/api/v1/archives/verification-tasks' }), expect: constant(200) },
    'GET /api/v1/archives/verification-tasks/:task_id': {
      prepare: async () => ({ path: `/api/v1/archives/verification-tasks/${sharedTask}` }),
      expect: constant(200),
    },
    // A finished task is returned as it is: reaching the handler shows as its answer.
    'DELETE /api/v1/archives/verification-tasks/:task_id': {
      prepare: async () => ({ path: `/api/v1/archives/verification-tasks/${sharedTask}` }),
      expect: constant(200),
    },
    // Recovery work and adoption: requests each handler refuses before queueing anything, so reaching it shows as its refusal.
    'POST /api/v1/archives/:archive_id/recovery': {
      prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/recovery`, body: { redundancy_percent: 0 } }),
      expect: constant(400),
    },
    'POST /api/v1/archives/:archive_id/repair': { prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/repair` }), expect: constant(404) },
    'POST /api/v1/archives/adopt': { prepare: async () => ({ path: '/api/v1/archives/adopt', body: { folder: '/etc' } }), expect: constant(400) },
    'GET /api/v1/archives/maintenance-tasks': { prepare: async () => ({ path: '/api/v1/archives/maintenance-tasks' }), expect: constant(200) },
    'GET /api/v1/archives/maintenance-tasks/:task_id': {
      prepare: async () => ({ path: '/api/v1/archives/maintenance-tasks/task_0000' }),
      expect: constant(404),
    },
    'DELETE /api/v1/archives/maintenance-tasks/:task_id': {
      prepare: async () => ({ path: '/api/v1/archives/maintenance-tasks/task_0000' }),
      expect: constant(404),
    },
    'GET /api/v1/archives/:archive_id/verifications': {
      prepare: async () => ({ path: `/api/v1/archives/${sharedArchive}/verifications` }),
      expect: constant(200),
    },
    'GET /api/v1/archives/search': { prepare: async () => ({ path: '/api/v1/archives/search?q=matrix' }), expect: constant(200) },
    'POST /api/v1/archives/bulk-edit': {
      prepare: async () => ({ path: '/api/v1/archives/bulk-edit', body: { ids: [sharedArchive], rating: 3 } }),
      expect: constant(200),
    },
    'GET /api/v1/archives/export': { prepare: async () => ({ path: '/api/v1/archives/export?format=csv' }), expect: constant(200) },
    'POST /api/v1/archives/import': {
      prepare: async () => ({ path: '/api/v1/archives/import', body: { format: 'disk2iso-catalogue', version: 1, categories: [], archives: [] } }),
      expect: constant(200),
    },
    'GET /api/v1/archive-categories': { prepare: async () => ({ path: '/api/v1/archive-categories' }), expect: constant(200) },
    'POST /api/v1/archive-categories': {
      prepare: async () => ({ path: '/api/v1/archive-categories', body: { name: unique('matrix category ') } }),
      expect: constant(201),
    },
    'PATCH /api/v1/archive-categories/:category_id': {
      prepare: async () => ({ path: `/api/v1/archive-categories/${await newCategory()}`, body: { name: unique('renamed category ') } }),
      expect: constant(200),
    },
    'DELETE /api/v1/archive-categories/:category_id': {
      prepare: async () => ({ path: `/api/v1/archive-categories/${await newCategory()}` }),
      expect: constant(204),
    },
    'GET /api/v1/devices': { prepare: async () => ({ path: '/api/v1/devices' }), expect: constant(200) },
    // An image file has no tray: reaching the handler shows as its refusal.
    'POST /api/v1/devices/:device/eject': { prepare: async () => ({ path: `/api/v1/devices/${scratchDevice}/eject` }), expect: constant(409) },
    'GET /api/v1/devices/:device/automation': { prepare: async () => ({ path: `/api/v1/devices/${scratchDevice}/automation` }), expect: constant(200) },
    // Manual mode: the sample changes what is stored, nothing happens to the drive.
    'PUT /api/v1/devices/:device/automation': {
      prepare: async () => ({
        path: `/api/v1/devices/${scratchDevice}/automation`,
        body: { mode: 'manual', name_template: '{label}', read_attempts: null, checksums: null, verify: null, eject: false, duplicates: 'skip' },
      }),
      expect: constant(200),
    },
    'GET /api/v1/system/status': { prepare: async () => ({ path: '/api/v1/system/status' }), expect: constant(200) },
    'GET /api/v1/system/config': { prepare: async () => ({ path: '/api/v1/system/config' }), expect: constant(200) },
    'GET /api/v1/system/nodes': { prepare: async () => ({ path: '/api/v1/system/nodes' }), expect: constant(200) },
    'PATCH /api/v1/system/config': { prepare: async () => ({ path: '/api/v1/system/config', body: { imaging: { read_attempts: 4 } } }), expect: constant(200) },
    'GET /api/v1/logs': { prepare: async () => ({ path: '/api/v1/logs?limit=5' }), expect: constant(200) },
    'GET /api/v1/ws/jobs': { prepare: async () => ({ path: '/api/v1/ws/jobs' }), expect: constant(101) },
    'GET /api/v1/events': { prepare: async () => ({ path: '/api/v1/events' }), expect: constant(200) },
    // Near the end: a login ends the session the caller's cookie named (no session fixation).
    'POST /api/v1/auth/login': {
      prepare: async () => ({ path: '/api/v1/auth/login', body: { username: await userWithPassword('viewer'), password: TEST_PASSWORD } }),
      expect: constant(200),
    },
    'GET /api/v1/auth/me': { prepare: async () => ({ path: '/api/v1/auth/me' }), expect: constant(200) },
    // A password too weak reaches the password rules (400) without changing anything; a key has no password (403).
    'PUT /api/v1/auth/password': {
      prepare: async () => ({ path: '/api/v1/auth/password', body: { current_password: TEST_PASSWORD, new_password: 'short' } }),
      expect: (caller) => (caller.kind === 'api_key' ? 403 : 400),
    },
    'POST /api/v1/auth/token': {
      prepare: async () => ({ path: '/api/v1/auth/token', body: { username: await userWithPassword('viewer'), password: TEST_PASSWORD } }),
      expect: constant(200),
    },
    'GET /api/v1/auth/setup': { prepare: async () => ({ path: '/api/v1/auth/setup' }), expect: constant(200) },
    // A token the service never issued, whoever sends it.
    'POST /api/v1/auth/setup': {
      prepare: async () => ({ path: '/api/v1/auth/setup', body: { token: 'A'.repeat(43), username: 'intruder', password: TEST_PASSWORD } }),
      expect: constant(401),
    },
    'GET /api/v1/users': { prepare: async () => ({ path: '/api/v1/users' }), expect: constant(200) },
    'POST /api/v1/users': {
      prepare: async () => ({ path: '/api/v1/users', body: { name: unique('new-user-'), role: 'viewer', password: TEST_PASSWORD } }),
      expect: constant(201),
    },
    'GET /api/v1/users/:name': { prepare: async () => ({ path: '/api/v1/users/keyowner' }), expect: constant(200) },
    'PATCH /api/v1/users/:name': {
      prepare: async () => ({ path: `/api/v1/users/${await userWithPassword('viewer')}`, body: { role: 'operator' } }),
      expect: constant(200),
    },
    'DELETE /api/v1/users/:name': { prepare: async () => ({ path: `/api/v1/users/${await userWithPassword('viewer')}` }), expect: constant(204) },
    'POST /api/v1/users/:name/password': {
      prepare: async () => ({ path: `/api/v1/users/${await userWithPassword('viewer')}/password`, body: { password: 'Another-Horse-43' } }),
      expect: constant(200),
    },
    'GET /api/v1/api-keys': { prepare: async () => ({ path: '/api/v1/api-keys' }), expect: constant(200) },
    // A key creates only keys within its scopes (the one holding keys:manage can create this one); a
    // bearer token only keys expiring no later than itself, which a key without expiry does not.
    'POST /api/v1/api-keys': {
      prepare: async () => ({ path: '/api/v1/api-keys', body: { name: unique('matrix key '), scopes: ['keys:manage'] } }),
      expect: (caller) => ('authorization' in caller.headers ? 403 : 201),
    },
    // A key revokes only keys within its own rights: the doomed key of a key caller has the caller's scopes.
    'DELETE /api/v1/api-keys/:id': {
      prepare: async (caller) => {
        const scopes = caller.kind === 'api_key' ? [...caller.permissions] : null;
        const { record } = await service.server.auth.apiKeys.create(
          { user: caller.user === '' ? 'keyowner' : caller.user, name: unique('doomed '), scopes },
          localActor('test'),
        );
        return { path: `/api/v1/api-keys/${record.id}` };
      },
      expect: constant(200),
    },
    'GET /api/v1/notifications/webhooks': { prepare: async () => ({ path: '/api/v1/notifications/webhooks' }), expect: constant(200) },
    'POST /api/v1/notifications/webhooks': {
      prepare: async () => ({ path: '/api/v1/notifications/webhooks', body: { name: unique('hook '), url: 'https://hooks.example.org/', events: [] } }),
      expect: constant(201),
    },
    'PATCH /api/v1/notifications/webhooks/:id': {
      prepare: async () => ({ path: `/api/v1/notifications/webhooks/${await disabledEndpoint()}`, body: { name: unique('renamed ') } }),
      expect: constant(200),
    },
    'DELETE /api/v1/notifications/webhooks/:id': {
      prepare: async () => ({ path: `/api/v1/notifications/webhooks/${await disabledEndpoint()}` }),
      expect: constant(204),
    },
    // A disabled endpoint takes no test: reaching the handler shows as its refusal, and nothing is sent.
    'POST /api/v1/notifications/webhooks/:id/test': {
      prepare: async () => ({ path: `/api/v1/notifications/webhooks/${await disabledEndpoint()}/test` }),
      expect: constant(400),
    },
    // No SMTP server is set: the test is queued and its delivery fails in the log, without a connection.
    'POST /api/v1/notifications/email/test': { prepare: async () => ({ path: '/api/v1/notifications/email/test' }), expect: constant(202) },
    'GET /api/v1/notifications/deliveries': { prepare: async () => ({ path: '/api/v1/notifications/deliveries' }), expect: constant(200) },
    'GET /api/v1/notifications/mqtt': { prepare: async () => ({ path: '/api/v1/notifications/mqtt' }), expect: constant(200) },
    'GET /api/v1/notifications/push/key': { prepare: async () => ({ path: '/api/v1/notifications/push/key' }), expect: constant(200) },
    'GET /api/v1/notifications/push/subscriptions': { prepare: async () => ({ path: '/api/v1/notifications/push/subscriptions' }), expect: constant(200) },
    // One endpoint per user: the same browser again replaces its subscription, so the per-user limit is never reached.
    'POST /api/v1/notifications/push/subscriptions': {
      prepare: async (caller) => ({ path: '/api/v1/notifications/push/subscriptions', body: pushBody(`${caller.user || 'nobody'}`) }),
      expect: constant(201),
    },
    // A device is removed only by its owner: the doomed one belongs to the caller where the caller can subscribe one.
    'DELETE /api/v1/notifications/push/subscriptions/:id': {
      prepare: async (caller) => {
        const owner = caller.valid && caller.permissions.has('jobs:read') ? caller.headers : {};
        const created = await api(service.url, 'POST', '/api/v1/notifications/push/subscriptions', pushBody(`${caller.user || 'nobody'}-doomed`), owner);
        assert.equal(created.status, 201, JSON.stringify(created.body));
        return { path: `/api/v1/notifications/push/subscriptions/${created.body.id}` };
      },
      expect: constant(204),
    },
    'GET /api/v1/audit': { prepare: async () => ({ path: '/api/v1/audit?limit=5' }), expect: constant(200) },
    // Near the end: a session that logs out is gone for every later call.
    'POST /api/v1/auth/logout': { prepare: async () => ({ path: '/api/v1/auth/logout' }), expect: constant(204) },
  };

  async function call(method: string, path: string, body: unknown, headers: Record<string, string>): Promise<number> {
    if (path === '/api/v1/ws/jobs' && method === 'GET') return webSocketUpgradeStatus(service.url, headers);
    if (path === '/api/v1/events' || method === 'HEAD' || path.endsWith('/download') || path.includes('/files/')) {
      const response = await fetch(`${service.url}${path}`, { method, headers });
      await response.body?.cancel();
      return response.status;
    }
    return (await anonymousApi(service.url, method, path, body, headers)).status;
  }

  function expected(route: DeclaredRoute, caller: Caller, sample: Sample): number {
    if (route.permission === 'public') return sample.expect(caller);
    if (!caller.valid) return 401;
    if (route.permission === 'authenticated') return sample.expect(caller);
    if (!caller.permissions.has(route.permission)) return 403;
    return sample.expect(caller);
  }

  /** Logout, then login (which replaces whatever session the caller's cookie named) run last. */
  const endsSessions = (route: DeclaredRoute): number => ['/api/v1/auth/logout', '/api/v1/auth/login'].indexOf(route.url) + 1;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-matrix-'));
    const iso = await makeIso({ dir: work, label: 'MATRIX', dataMiB: 1, files: 1 });
    service = await startTestServer({ devices: [iso.path], env: { DISK2ISO_NOTIFICATIONS_PUSH_ALLOWED_HOSTS: 'localhost' } });
    scratchDevice = (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const test = localActor('test');
    const { auth } = service.server;
    const origin = new URL(service.url).origin;

    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const name = `matrix-${role}`;
      await auth.users.add({ name, role, password: TEST_PASSWORD, requireChange: false }, test);
      const login = await anonymousApi(service.url, 'POST', '/api/v1/auth/login', { username: name, password: TEST_PASSWORD });
      assert.equal(login.status, 200, JSON.stringify(login.body));
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      callers.push({
        label: `${role} session`,
        valid: true,
        kind: 'user',
        user: name,
        permissions: permissionsOf(role),
        headers: { cookie, 'x-csrf-token': login.body.csrf_token, origin },
      });
    }

    await auth.users.add({ name: 'keyowner', role: 'admin', password: TEST_PASSWORD, requireChange: false }, test);
    for (const permission of PERMISSIONS)
      scopedKey.set(permission, (await auth.apiKeys.create({ user: 'keyowner', name: `only ${permission}`, scopes: [permission] }, test)).key);
    const revoked = await auth.apiKeys.create({ user: 'keyowner', name: 'revoked' }, test);
    await auth.apiKeys.revoke(revoked.record.id, test);

    const token = await auth.tokens.issueForPassword('matrix-admin', TEST_PASSWORD, { ip: '127.0.0.1', userAgent: null });
    const [header, payload, signature] = token.token.split('.');
    const claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, sub: 'someone-else', role: 'admin' })).toString('base64url');

    await auth.users.add({ name: 'jwt-changer', role: 'admin', password: TEST_PASSWORD, requireChange: false }, test);
    const outdated = await auth.tokens.issueForPassword('jwt-changer', TEST_PASSWORD, { ip: '127.0.0.1', userAgent: null });
    await auth.users.resetPassword('jwt-changer', 'Changed-Horse-44', test, { requireChange: false });

    // An hour in the past, with the service's own key file: what it issues then has expired now.
    const database = await openDataDirDatabase(service.dataDir);
    let expiredToken: string;
    let expiredKey: string;
    try {
      const past = createAuthService({ database, dataDir: service.dataDir, now: () => new Date(Date.now() - 60 * 60 * 1000) });
      expiredToken = (await past.tokens.issueForPassword('matrix-admin', TEST_PASSWORD, { ip: '127.0.0.1', userAgent: null })).token;
      expiredKey = (await past.apiKeys.create({ user: 'keyowner', name: 'expired', expiresAt: new Date(Date.now() - 60 * 1000) }, test)).key;
    } finally {
      await database.close();
    }

    const admin = permissionsOf('admin');
    const none = new Set<Permission>();
    callers.push(
      { label: 'anonymous', valid: false, kind: 'none', user: '', permissions: none, headers: {} },
      { label: 'valid JWT (admin)', valid: true, kind: 'user', user: 'matrix-admin', permissions: admin, headers: { authorization: `Bearer ${token.token}` } },
      { label: 'expired API key', valid: false, kind: 'api_key', user: 'keyowner', permissions: admin, headers: { 'x-api-key': expiredKey } },
      { label: 'revoked API key', valid: false, kind: 'api_key', user: 'keyowner', permissions: admin, headers: { 'x-api-key': revoked.key } },
      { label: 'expired JWT', valid: false, kind: 'user', user: 'matrix-admin', permissions: admin, headers: { authorization: `Bearer ${expiredToken}` } },
      {
        label: 'tampered JWT',
        valid: false,
        kind: 'user',
        user: 'matrix-admin',
        permissions: admin,
        headers: { authorization: `Bearer ${header}.${forged}.${signature}` },
      },
      {
        label: 'JWT after password change',
        valid: false,
        kind: 'user',
        user: 'jwt-changer',
        permissions: admin,
        headers: { authorization: `Bearer ${outdated.token}` },
      },
    );

    const first = await finishedJob();
    sharedJob = first.id;
    sharedArchive = first.archive;
    sharedTask = (await verifyArchive(service.url, sharedArchive)).id;
  });

  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  /** A route's sample; HEAD shares its GET's unless it has its own. */
  const sampleOf = (route: DeclaredRoute): Sample | undefined =>
    samples[`${route.method} ${route.url}`] ?? (route.method === 'HEAD' ? samples[`GET ${route.url}`] : undefined);

  it('has a sample request for every route in the route table', () => {
    const routes = service.server.routeTable.filter((route) => route.url.startsWith('/api/v1/'));
    const missing = routes.filter((route) => sampleOf(route) === undefined).map((route) => `${route.method} ${route.url}`);
    assert.deepEqual(missing, [], 'routes without a sample request in the matrix');
  });

  it('answers every caller exactly as its credentials and the route permission say', async () => {
    const routes = service.server.routeTable.filter((route) => route.url.startsWith('/api/v1/')).sort((a, b) => endsSessions(a) - endsSessions(b));
    const wrong: string[] = [];
    let checked = 0;
    for (const route of routes) {
      const sample = sampleOf(route);
      if (sample === undefined) continue;
      const keyCallers: Caller[] = ['with', 'without'].map((which) => {
        const permission: Permission =
          route.permission === 'public' || route.permission === 'authenticated' ? (which === 'with' ? 'jobs:read' : 'archives:read') : route.permission;
        const scope = which === 'with' ? permission : (PERMISSIONS.find((other) => other !== permission && other !== 'users:admin') ?? 'jobs:read');
        return {
          label: `API key ${which} ${which === 'with' ? scope : `${permission} (holds ${scope})`}`,
          valid: true,
          kind: 'api_key',
          user: 'keyowner',
          permissions: new Set([scope]),
          headers: { 'x-api-key': scopedKey.get(scope) ?? '' },
        };
      });
      for (const caller of [...callers, ...keyCallers]) {
        const { path, body } = await sample.prepare(caller);
        const want = expected(route, caller, sample);
        const got = await call(route.method, path, body, caller.headers);
        checked += 1;
        if (got !== want) wrong.push(`${route.method} ${route.url} as ${caller.label}: ${got}, expected ${want}`);
      }
    }
    assert.deepEqual(wrong, []);
    assert.ok(checked >= routes.length * 12, `${checked} calls checked`);
  });
});
