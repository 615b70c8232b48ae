import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../src/auth/principal.js';
import { loadConfig } from '../../src/config/load.js';
import type { DueDelivery } from '../../src/db/notification-repository.js';
import type { PushSubscriptionRepository } from '../../src/db/push-subscription-repository.js';
import { createSqliteQueue } from '../../src/db/sqlite-queue.js';
import { PUSH_SUBSCRIPTIONS_PER_USER, VAPID_KEY_FILE, createPushChannel, loadOrCreateVapidKeys } from '../../src/notifications/push.js';
import { TEST_PASSWORD, type TestServer, api, startTestServer, testEnv, waitFor } from '../http/support.js';
import { openDataDirDatabase, testDriveId } from '../support/database.js';
import { makeIso } from '../tools/iso.js';
import { type BrowserSubscription, type PushService, decryptPush, startPushService } from './push-service.js';

interface PushPayload {
  title: string;
  body: string;
  url: string;
  tag: string;
  type: string;
}

/**
 * Web Push end to end: a real service images a real file and tells a push service (test/notifications/
 * push-service.ts, HTTPS with its own CA, written from the RFCs) about it; the message is decrypted
 * there with the keys a browser would hold. Around it: what is not sent, what is refused, who sees what.
 */
describe('push notifications through a push service', () => {
  let work: string;
  let pushService: PushService;
  let service: TestServer;
  let device: string;
  let viewerKey: string;
  let publicKey: string;
  const subscribe = (browser: BrowserSubscription, events: string[], headers: Record<string, string> = {}, label = 'Phone') =>
    api(service.url, 'POST', '/api/v1/notifications/push/subscriptions', { endpoint: browser.endpoint, keys: browser.keys, label, events }, headers);
  const messagesTo = (path: string) => pushService.received.filter((entry) => entry.path === path);
  const payloadOf = (browser: BrowserSubscription, index: number): PushPayload => {
    const message = messagesTo(new URL(browser.endpoint).pathname)[index];
    assert.ok(message !== undefined);
    return JSON.parse(decryptPush(message.body, browser)) as PushPayload;
  };
  const finishedJob = async (name: string): Promise<string> => {
    const created = await api(service.url, 'POST', '/api/v1/jobs', { device, name });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitFor(`${name} to finish`, async () => (await api(service.url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.status === 'completed');
    return created.body.id as string;
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-push-'));
    pushService = await startPushService(work);
    const iso = await makeIso({ dir: work, label: 'PUSH_DISC', dataMiB: 1, files: 1 });
    service = await startTestServer({
      devices: [iso.path],
      notifications: { pollMs: 50 },
      env: { DISK2ISO_NOTIFICATIONS_PUSH_ALLOWED_HOSTS: 'localhost', DISK2ISO_NOTIFICATIONS_PUSH_CA_FILE: pushService.caFile },
    });
    device = (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0].id;
    await service.server.auth.users.add({ name: 'push-viewer', role: 'viewer', password: TEST_PASSWORD, requireChange: false }, localActor('test'));
    viewerKey = (await service.server.auth.apiKeys.create({ user: 'push-viewer', name: 'push' }, localActor('test'))).key;
    publicKey = (await api(service.url, 'GET', '/api/v1/notifications/push/key')).body.public_key;
  });

  after(async () => {
    await service?.close();
    await pushService?.close();
    await rm(work, { recursive: true, force: true });
  });

  /**
   * The key pair where the service keeps it: a private file in the embedded data dir; on PostgreSQL
   * the database (every instance of a cluster signs with it), and no file at all.
   */
  const storedKeyPair = async (): Promise<{ publicKey: string; privateKey: string }> => {
    const file = join(service.dataDir, VAPID_KEY_FILE);
    const database = await openDataDirDatabase(service.dataDir);
    try {
      if (database.dialect === 'sqlite') {
        assert.equal((await stat(file)).mode & 0o777, 0o600);
        return JSON.parse(await readFile(file, 'utf8'));
      }
      assert.equal(existsSync(file), false, 'no key file beside a cluster database');
      const row = await database.kysely.selectFrom('service_secrets').select('value').where('name', '=', 'vapid_key_pair').executeTakeFirstOrThrow();
      return JSON.parse(row.value);
    } finally {
      await database.close();
    }
  };

  it('keeps the VAPID key pair private and hands out only the public key', async () => {
    const stored = await storedKeyPair();
    assert.equal(stored.publicKey, publicKey);
    assert.equal(Buffer.from(publicKey, 'base64url').length, 65);
    const answer = JSON.stringify((await api(service.url, 'GET', '/api/v1/notifications/push/key')).body);
    assert.ok(!answer.includes(stored.privateKey));
  });

  it('sends a finished and a failed job to the device that chose them, and nothing it did not choose', { timeout: 120_000 }, async () => {
    const phone = pushService.subscribe('/push/phone');
    const tablet = pushService.subscribe('/push/tablet');
    const created = await subscribe(phone, ['job.completed', 'job.failed']);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(Object.keys(created.body).sort(), ['created_at', 'events', 'id', 'label', 'service']);
    assert.equal(created.body.service, pushService.origin);
    assert.equal((await subscribe(tablet, ['disc.inserted'], {}, 'Tablet')).status, 201);

    const jobId = await finishedJob('PUSH_DISC');
    await waitFor('the push message of the finished job', () => messagesTo('/push/phone').length > 0);
    const finished = payloadOf(phone, 0);
    assert.equal(finished.type, 'job.completed');
    assert.match(finished.title, /PUSH_DISC/);
    assert.match(finished.body, /PUSH_DISC/);
    assert.equal(finished.url, `/jobs/${jobId}`);
    const request = messagesTo('/push/phone')[0];
    assert.equal(request?.vapidKey, publicKey, 'signed with the key browsers subscribed with');
    assert.equal(request?.claims.aud, pushService.origin);

    // A real job that fails: its drive is gone when the runner takes it.
    const database = await openDataDirDatabase(service.dataDir);
    try {
      await createSqliteQueue(database).enqueue({
        name: 'PUSH_GONE',
        deviceId: testDriveId('loop999'),
        devicePath: '/dev/loop999',
        outputFile: join(work, 'PUSH_GONE.iso'),
      });
    } finally {
      await database.close();
    }
    await waitFor('the push message of the failed job', () => messagesTo('/push/phone').length > 1);
    const failed = payloadOf(phone, 1);
    assert.equal(failed.type, 'job.failed');
    assert.match(failed.title, /PUSH_GONE/);

    assert.deepEqual(messagesTo('/push/tablet'), [], 'the tablet chose only inserted discs');
    assert.deepEqual(pushService.refused, []);
    const deliveries = (await api(service.url, 'GET', '/api/v1/notifications/deliveries?limit=500')).body.deliveries as Array<{
      channel: string;
      status: string;
    }>;
    assert.deepEqual(
      deliveries.filter((entry) => entry.channel === 'push').map((entry) => entry.status),
      ['sent', 'sent'],
    );
  });

  it('removes a device the push service says is gone (410)', { timeout: 120_000 }, async () => {
    const laptop = pushService.subscribe('/push/laptop');
    const created = await subscribe(laptop, ['job.completed'], {}, 'Laptop');
    assert.equal(created.status, 201);
    pushService.answer('/push/laptop', 410);
    await finishedJob('PUSH_AGAIN');
    await waitFor('the device to be removed', async () => {
      const listed = (await api(service.url, 'GET', '/api/v1/notifications/push/subscriptions')).body.subscriptions as Array<{ id: string }>;
      return listed.every((entry) => entry.id !== created.body.id);
    });
    assert.equal(messagesTo('/push/laptop').length, 1, 'it was tried once');
  });

  it("sends nothing to a disabled user's devices", { timeout: 120_000 }, async () => {
    await service.server.auth.users.add({ name: 'push-leaver', role: 'operator', password: TEST_PASSWORD, requireChange: false }, localActor('test'));
    const leaverKey = (await service.server.auth.apiKeys.create({ user: 'push-leaver', name: 'push' }, localActor('test'))).key;
    const desk = pushService.subscribe('/push/leaver');
    assert.equal((await subscribe(desk, ['job.completed'], { 'x-api-key': leaverKey }, 'Desk')).status, 201);
    const watcher = pushService.subscribe('/push/watcher');
    assert.equal((await subscribe(watcher, ['job.completed'], {}, 'Watcher')).status, 201);
    await service.server.auth.users.disable('push-leaver', localActor('test'));
    await finishedJob('PUSH_AFTER_LEAVING');
    await waitFor('the push message to the enabled user', () => messagesTo('/push/watcher').length > 0);
    assert.match(payloadOf(watcher, 0).title, /PUSH_AFTER_LEAVING/);
    await waitFor('every push delivery to be settled', async () => {
      const pending = (await api(service.url, 'GET', '/api/v1/notifications/deliveries?status=pending&limit=500')).body.deliveries as Array<{
        channel: string;
      }>;
      return pending.every((entry) => entry.channel !== 'push');
    });
    assert.deepEqual(messagesTo('/push/leaver'), []);
  });

  it('refuses endpoints on loopback, private and link-local addresses, and plain http', async () => {
    const browser = pushService.subscribe('/push/refused');
    const port = new URL(pushService.origin).port;
    for (const endpoint of [`https://127.0.0.1:${port}/push/x`, 'https://10.1.2.3/push/x', 'https://169.254.169.254/latest', 'https://[::1]/push/x']) {
      const refused = await api(service.url, 'POST', '/api/v1/notifications/push/subscriptions', {
        endpoint,
        keys: browser.keys,
        label: 'x',
        events: ['job.failed'],
      });
      assert.equal(refused.status, 400, endpoint);
      assert.equal(refused.body.error.code, 'push_endpoint_refused', endpoint);
    }
    const plain = await api(service.url, 'POST', '/api/v1/notifications/push/subscriptions', {
      endpoint: browser.endpoint.replace('https:', 'http:'),
      keys: browser.keys,
      label: 'x',
      events: ['job.failed'],
    });
    assert.equal(plain.status, 400);
  });

  it('checks the address again when sending: a host allowed at registration but not now is not reached', async () => {
    const browser = pushService.subscribe('/push/moved');
    const config = loadConfig({ env: testEnv(service.dataDir, [], { DISK2ISO_NOTIFICATIONS_PUSH_CA_FILE: pushService.caFile }) });
    const gone: string[] = [];
    const subscriptions: PushSubscriptionRepository = {
      save: () => assert.fail('not saved here'),
      listForUser: async () => [],
      deleteForUser: async () => undefined,
      deleteGone: async (id) => {
        gone.push(id);
      },
    };
    const channel = createPushChannel({ config, subscriptions, keyFile: join(service.dataDir, VAPID_KEY_FILE) });
    const due = {
      delivery: { id: 'msg_1' },
      event: { id: 'evt_1', type: 'job.failed', at: new Date().toISOString(), payload: { job: { id: 'job_1', name: 'X' } } },
      endpoint: null,
      subscription: {
        id: 'psh_1',
        userId: 'user_1',
        label: 'x',
        events: ['job.failed'],
        service: pushService.origin,
        createdAt: '',
        ...browser,
        ...browser.keys,
      },
    } as unknown as DueDelivery;
    await assert.rejects(channel.send(due, AbortSignal.timeout(5000)), /loopback, link-local or private address; notifications\.push_allowed_hosts/);
    assert.deepEqual(messagesTo('/push/moved'), []);
  });

  it("shows and removes only the caller's own devices, limits how many, and only events the caller may read", async () => {
    const own = (await api(service.url, 'GET', '/api/v1/notifications/push/subscriptions')).body.subscriptions as Array<{ id: string }>;
    assert.ok(own.length > 0);
    const viewer = { 'x-api-key': viewerKey };
    const theirs = await api(service.url, 'GET', '/api/v1/notifications/push/subscriptions', undefined, viewer);
    assert.deepEqual(theirs.body.subscriptions, [], "the admin's devices are not the viewer's");
    const taken = await api(service.url, 'DELETE', `/api/v1/notifications/push/subscriptions/${own[0]?.id}`, undefined, viewer);
    assert.equal(taken.status, 404);
    assert.equal((await api(service.url, 'GET', '/api/v1/notifications/push/subscriptions')).body.subscriptions.length, own.length, 'still there');

    for (let index = 0; index < PUSH_SUBSCRIPTIONS_PER_USER; index++) {
      assert.equal((await subscribe(pushService.subscribe(`/push/viewer-${index}`), ['job.failed'], viewer)).status, 201);
    }
    const beyond = await subscribe(pushService.subscribe('/push/viewer-too-many'), ['job.failed'], viewer);
    assert.equal(beyond.status, 409);
    assert.equal(beyond.body.error.code, 'push_subscription_limit');
    const mine = (await api(service.url, 'GET', '/api/v1/notifications/push/subscriptions', undefined, viewer)).body.subscriptions as Array<{ id: string }>;
    assert.equal(mine.length, PUSH_SUBSCRIPTIONS_PER_USER);
    assert.equal((await api(service.url, 'DELETE', `/api/v1/notifications/push/subscriptions/${mine[0]?.id}`, undefined, viewer)).status, 204);

    const jobsOnly = (await service.server.auth.apiKeys.create({ user: 'push-viewer', name: 'jobs only', scopes: ['jobs:read'] }, localActor('test'))).key;
    const archives = await subscribe(pushService.subscribe('/push/scoped'), ['verification.failed'], { 'x-api-key': jobsOnly });
    assert.equal(archives.status, 403, 'a key for jobs learns nothing of archives');
  });

  it('makes one key pair and keeps it', async () => {
    const file = join(work, 'keys', 'vapid.json');
    await mkdir(join(work, 'keys'));
    const [first, second] = await Promise.all([loadOrCreateVapidKeys(file), loadOrCreateVapidKeys(file)]);
    assert.deepEqual(first, second);
    assert.deepEqual(await loadOrCreateVapidKeys(file), first);
  });
});
