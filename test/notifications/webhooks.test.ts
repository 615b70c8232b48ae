import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { isInternalAddress, newWebhookSecret, signatureHeaders } from '../../src/notifications/webhook.js';
import { type TestServer, api, startTestServer, waitFor } from '../http/support.js';
import { attachTestDatabase, detachTestDatabase } from '../support/database.js';
import { makeIso } from '../tools/iso.js';
import { type WebhookReceiver, signatureValid, startReceiver } from './receiver.js';

const ALLOW_PRIVATE = { DISK2ISO_NOTIFICATIONS_ALLOW_PRIVATE_DESTINATIONS: 'true' };
/** Retries at once instead of after 30 s: what is tested is that they happen, not when. */
const FAST_RETRIES = { pollMs: 50, retryBaseMs: 1, retryMaxMs: 1 };

interface Delivery {
  id: string;
  event_type: string;
  status: string;
  attempts: number;
  last_status_code: number | null;
  last_error: string | null;
}

async function deliveries(url: string): Promise<Delivery[]> {
  const listed = await api(url, 'GET', '/api/v1/notifications/deliveries?limit=500');
  assert.equal(listed.status, 200, JSON.stringify(listed.body));
  return listed.body.deliveries;
}

describe('webhook signatures (Standard Webhooks)', () => {
  it('signs id.timestamp.body so that the specification, recomputed independently, and the reference library both accept it', () => {
    const secret = newWebhookSecret();
    assert.match(secret, /^whsec_[A-Za-z0-9+/]{43}=$/, '32 random bytes in base64');
    const body = JSON.stringify({ type: 'job.completed', data: { name: 'DISC' } });
    const headers = signatureHeaders(secret, 'msg_0123', new Date(), body);
    assert.equal(headers['webhook-id'], 'msg_0123');
    assert.match(headers['webhook-signature'] ?? '', /^v1,[A-Za-z0-9+/]+=*$/);
    assert.equal(signatureValid(secret, { headers, body }), true);
    assert.deepEqual(new Webhook(secret).verify(body, headers), JSON.parse(body));
    assert.equal(signatureValid(secret, { headers, body: body.replace('DISC', 'DISK') }), false, 'a changed body fails');
    assert.equal(signatureValid(newWebhookSecret(), { headers, body }), false, 'another secret fails');
  });
});

describe('the SSRF guard', () => {
  it('counts loopback, link-local, private, shared, unique-local and mapped addresses as internal, and public ones not', () => {
    const internal = ['127.0.0.1', '127.8.9.10', '10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.10', '169.254.169.254', '100.64.0.1', '0.0.0.0'];
    const internal6 = ['::1', '::', 'fe80::1', 'fd12:3456::1', 'fc00::1', '::ffff:10.0.0.1', '::ffff:127.0.0.1', 'ff02::1'];
    for (const address of [...internal, ...internal6]) assert.equal(isInternalAddress(address), true, address);
    for (const address of ['93.184.216.34', '172.32.0.1', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) {
      assert.equal(isInternalAddress(address), false, address);
    }
    assert.equal(isInternalAddress('not-an-address'), true, 'what is not an address is never let through');
  });
});

describe('webhooks through a running service', () => {
  let work: string;
  let isoPath: string;
  let receiver: WebhookReceiver;
  let service: TestServer | undefined;
  let restartDataDir: string | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-webhooks-'));
    isoPath = (await makeIso({ dir: work, label: 'HOOKED', dataMiB: 1, files: 1 })).path;
    receiver = await startReceiver();
  });
  after(async () => {
    await service?.close();
    await receiver.close();
    await rm(work, { recursive: true, force: true });
    if (restartDataDir !== undefined) await detachTestDatabase(restartDataDir);
  });

  it("sends a job's events, signed, to each endpoint that subscribed to them, and logs every delivery", async () => {
    service = await startTestServer({ devices: [isoPath], env: ALLOW_PRIVATE, notifications: FAST_RETRIES });
    const { url } = service;
    const created = await api(url, 'POST', '/api/v1/notifications/webhooks', {
      name: 'receiver',
      url: `http://hookuser:hookpass@127.0.0.1:${receiver.port}/hook?token=tok123`,
      events: ['job.queued', 'job.started', 'job.completed', 'job.failed'],
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const { secret, webhook } = created.body;
    assert.match(secret, /^whsec_/);
    const other = await api(url, 'POST', '/api/v1/notifications/webhooks', {
      name: 'only failures',
      url: `http://127.0.0.1:${receiver.port}/failures`,
      events: ['job.failed'],
    });
    assert.equal(other.status, 201);

    const listed = JSON.stringify((await api(url, 'GET', '/api/v1/notifications/webhooks')).body);
    for (const hidden of [secret, 'hookpass', 'tok123']) assert.ok(!listed.includes(hidden), `${hidden} listed`);

    const deviceId = (await api(url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const job = await api(url, 'POST', '/api/v1/jobs', { device: deviceId });
    assert.equal(job.status, 201, JSON.stringify(job.body));
    await waitFor('the completion to reach the receiver', () => receiver.received.some((hook) => JSON.parse(hook.body).type === 'job.completed'));

    const bodies = receiver.received.map((hook) => JSON.parse(hook.body));
    assert.deepEqual(
      bodies.map((body) => body.type),
      ['job.queued', 'job.started', 'job.completed'],
    );
    for (const hook of receiver.received) {
      assert.equal(signatureValid(secret, hook), true, hook.body);
      assert.equal(hook.headers['content-type'], 'application/json');
    }
    assert.ok(
      receiver.received.every((hook) => hook.headers.authorization === 'Basic aG9va3VzZXI6aG9va3Bhc3M='),
      'URL credentials are used',
    );
    const completed = bodies[2];
    assert.equal(completed.data.job.id, job.body.id);
    assert.equal(completed.data.job.name, 'HOOKED');
    assert.equal(completed.data.job.bad_bytes, 0);
    assert.equal(typeof completed.data.job.archive_id, 'string');

    await waitFor('the log to show the deliveries as sent', async () => (await deliveries(url)).filter((entry) => entry.status === 'sent').length === 3);
    const log = await deliveries(url);
    assert.equal(log.length, 3, 'nothing for the endpoint that wants only failures');
    for (const entry of log) {
      assert.deepEqual([entry.status, entry.attempts, entry.last_status_code], ['sent', 1, 200]);
      assert.ok(
        receiver.received.some((hook) => hook.headers['webhook-id'] === entry.id),
        'the webhook-id is the delivery id',
      );
    }
    assert.equal((await api(url, 'GET', `/api/v1/notifications/deliveries?webhook_id=${webhook.id}`)).body.total, 3);

    const audit = await service.server.auth.audit.list({ eventType: 'webhook', limit: 10 });
    assert.deepEqual(
      audit.items.map((entry) => [entry.action, entry.details?.id]).sort(),
      [
        ['create', other.body.webhook.id],
        ['create', webhook.id],
      ].sort(),
    );
    assert.ok(!JSON.stringify(audit).includes(secret) && !JSON.stringify(audit).includes('hookpass'), 'no secret in the audit trail');
  });

  it('tries again after an answer that is no 2xx, and marks the delivery failed once the attempts are used up', async () => {
    await service?.close();
    service = await startTestServer({ env: ALLOW_PRIVATE, notifications: { ...FAST_RETRIES, maxAttempts: 3 } });
    const { url } = service;
    receiver.received.length = 0;
    receiver.answer(503);
    const { webhook } = (await api(url, 'POST', '/api/v1/notifications/webhooks', { name: 'down', url: `http://127.0.0.1:${receiver.port}/`, events: [] }))
      .body;
    const test = await api(url, 'POST', `/api/v1/notifications/webhooks/${webhook.id}/test`);
    assert.equal(test.status, 202, JSON.stringify(test.body));
    await waitFor('the delivery to be given up', async () => (await deliveries(url)).some((entry) => entry.status === 'failed'));
    const [entry] = await deliveries(url);
    assert.deepEqual([entry?.event_type, entry?.attempts, entry?.last_status_code], ['notification.test', 3, 503]);
    assert.equal(receiver.received.length, 3);
    assert.deepEqual(new Set(receiver.received.map((hook) => hook.headers['webhook-id'])), new Set([test.body.id]), 'one id over every attempt');
    receiver.answer(200);
  });

  it('refuses a destination on the host itself unless the server allows private destinations', async () => {
    await service?.close();
    service = await startTestServer({ notifications: FAST_RETRIES });
    const { url } = service;
    receiver.received.length = 0;
    for (const host of ['127.0.0.1', 'localhost', '[::ffff:127.0.0.1]']) {
      const { webhook } = (await api(url, 'POST', '/api/v1/notifications/webhooks', { name: host, url: `http://${host}:${receiver.port}/`, events: [] })).body;
      assert.equal((await api(url, 'POST', `/api/v1/notifications/webhooks/${webhook.id}/test`)).status, 202);
    }
    await waitFor('three refused attempts', async () => (await deliveries(url)).filter((entry) => entry.attempts > 0).length === 3);
    for (const entry of await deliveries(url)) {
      assert.match(entry.last_error ?? '', /loopback, link-local or private address; notifications\.allow_private_destinations allows it/);
      assert.equal(entry.last_status_code, null);
    }
    assert.equal(receiver.received.length, 0, 'no request reached the receiver');
    const changed = await api(url, 'PATCH', '/api/v1/system/config', { notifications: { allow_private_destinations: true } });
    assert.equal(changed.status, 409, 'not over HTTP');
  });

  it('keeps an undelivered event across a restart and delivers it exactly once, with the same webhook-id', async () => {
    await service?.close();
    const dataDir = join(work, 'restart');
    await attachTestDatabase(dataDir);
    restartDataDir = dataDir;
    const closed = await startReceiver();
    const port = closed.port;
    await closed.close();
    // Retried every 100 ms and never given up while this service runs: with the default ten attempts
    // at 1 ms apart, the delivery could be given up before the test looks at it.
    const patient = { ...FAST_RETRIES, retryBaseMs: 100, retryMaxMs: 100, maxAttempts: 1_000_000 };
    service = await startTestServer({ dataDir, env: ALLOW_PRIVATE, notifications: patient });
    const { url } = service;
    const { secret, webhook } = (await api(url, 'POST', '/api/v1/notifications/webhooks', { name: 'later', url: `http://127.0.0.1:${port}/`, events: [] }))
      .body;
    const test = (await api(url, 'POST', `/api/v1/notifications/webhooks/${webhook.id}/test`)).body;
    await waitFor('an attempt against the closed port', async () => (await deliveries(url)).some((entry) => entry.attempts > 0));
    const [pending] = await deliveries(url);
    assert.equal(pending?.status, 'pending');
    assert.match(pending?.last_error ?? '', /ECONNREFUSED/);
    await service.close();
    service = undefined;

    const later = await startReceiver(port);
    try {
      // A new service knows the delivery only from the outbox in the database.
      service = await startTestServer({ dataDir, env: ALLOW_PRIVATE, notifications: FAST_RETRIES });
      await waitFor('the delivery after the restart', async () => (await deliveries(service?.url ?? '')).some((entry) => entry.status === 'sent'));
      assert.equal(later.received.length, 1);
      assert.equal(later.received[0]?.headers['webhook-id'], test.id);
      assert.equal(signatureValid(secret, later.received[0] ?? { headers: {}, body: '' }), true);
      assert.equal(JSON.parse(later.received[0]?.body ?? '{}').type, 'notification.test');
    } finally {
      await later.close();
    }
  });
});
