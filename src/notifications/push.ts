import { randomBytes } from 'node:crypto';
import { chmod, link, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';
import webPush from 'web-push';
import type { Config } from '../config/schema.js';
import type { DueDelivery } from '../db/notification-repository.js';
import type { PushSubscriptionInput, PushSubscriptionRepository } from '../db/push-subscription-repository.js';
import type { SharedSecrets } from '../db/secret-repository.js';
import { UnavailableError, ValidationError, errnoCode, errorMessage } from '../errors.js';
import type { JsonObject, JsonValue } from '../json.js';
import { allCatalogs, createTranslator } from '../web/i18n.js';
import { type DomainEvent, PUSH_EVENT_TYPES, type PushSubscription } from './model.js';
import type { ChannelOutcome } from './service.js';
import { DestinationRefusedError, isInternalAddress, postBody, resolveDestination } from './webhook.js';

/**
 * Web Push (RFC 8030) with VAPID (RFC 8292) and encrypted payloads (RFC 8291): each user's browsers
 * subscribe through their push service, and the outbox POSTs each event there. The endpoint is a
 * URL the browser (so: a user) supplies, so it is checked like a webhook: https only, and no
 * loopback, link-local or private address unless the host is in notifications.push_allowed_hosts,
 * checked again at every send against the address the request then goes to.
 */

export const VAPID_KEY_FILE = 'vapid.json';
const SECRET_FILE_MODE = 0o600;
/**
 * Devices one user may subscribe: a phone, a tablet, a few browsers. Each costs a request per event.
 * @internal exported for its tests
 */
export const PUSH_SUBSCRIPTIONS_PER_USER = 10;
/** How long a push service keeps a message for a device that is offline (1 day): older news is no news. */
const TIME_TO_LIVE_SECONDS = 24 * 60 * 60;
const MAX_ENDPOINT_LENGTH = 2048;

interface VapidKeys {
  /** Uncompressed P-256 point, base64url: what browsers get as applicationServerKey. */
  publicKey: string;
  privateKey: string;
}

/**
 * The service's VAPID key pair, made on first use as DATA_DIR/vapid.json with mode 0600 (written
 * privately and linked into place, as the JWT key, so two processes starting together agree on one).
 * @internal exported for its tests
 */
export async function loadOrCreateVapidKeys(file: string): Promise<VapidKeys> {
  try {
    return await readVapidKeys(file);
  } catch (error) {
    if (errnoCode(error) !== 'ENOENT') throw error;
  }
  const draft = join(dirname(file), `.${VAPID_KEY_FILE}.${randomBytes(6).toString('hex')}`);
  try {
    await writeFile(draft, `${newVapidKeys()}\n`, { mode: SECRET_FILE_MODE, flag: 'wx' });
    await link(draft, file).catch((error: unknown) => {
      if (errnoCode(error) !== 'EEXIST') throw error;
    });
  } finally {
    await rm(draft, { force: true });
  }
  return readVapidKeys(file);
}

const newVapidKeys = (): string => JSON.stringify(webPush.generateVAPIDKeys());

/** The key pair from its JSON, refused unless it holds a P-256 public key and a private key. */
const vapidKeysOf =
  (where: string) =>
  (text: string): VapidKeys => {
    const parsed: unknown = JSON.parse(text);
    const keys = parsed as Partial<VapidKeys> | null;
    if (typeof keys?.publicKey !== 'string' || typeof keys.privateKey !== 'string' || Buffer.from(keys.publicKey, 'base64url').length !== 65) {
      throw new UnavailableError('signing_key_invalid', `${where} holds no usable VAPID key pair; remove it to have a new one made`, { source: where });
    }
    return { publicKey: keys.publicKey, privateKey: keys.privateKey };
  };

async function readVapidKeys(file: string): Promise<VapidKeys> {
  // The private key signs for this service at every push service: nobody else may read it.
  if (((await stat(file)).mode & 0o777) !== SECRET_FILE_MODE) await chmod(file, SECRET_FILE_MODE);
  return vapidKeysOf(file)(await readFile(file, 'utf8'));
}

function hostOf(url: URL): string {
  return (url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname).toLowerCase();
}

function allowedInternal(config: Config, url: URL): boolean {
  return config.notifications.push_allowed_hosts.some((host) => host.toLowerCase() === hostOf(url));
}

function refused(message: string): ValidationError {
  return new ValidationError('push_endpoint_refused', message, [{ field: 'endpoint' }]);
}

/**
 * Where the service may POST: an https URL whose host resolves only to public addresses (or is
 * allowed by name). Called at registration, so a user hears at once; the outbox checks again at send.
 */
async function checkEndpoint(config: Config, endpoint: string): Promise<void> {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw refused('the endpoint is not a URL');
  }
  if (url.protocol !== 'https:') throw refused('a push endpoint must be an https:// URL');
  if (url.username !== '' || url.password !== '') throw refused('a push endpoint carries no credentials');
  if (allowedInternal(config, url)) return;
  if (isIP(hostOf(url)) !== 0 && isInternalAddress(hostOf(url))) {
    throw refused(`${hostOf(url)} is a loopback, link-local or private address; notifications.push_allowed_hosts allows a host by name`);
  }
  try {
    await resolveDestination(url, false, 'notifications.push_allowed_hosts');
  } catch (error) {
    throw refused(error instanceof DestinationRefusedError ? error.message : `${hostOf(url)} cannot be resolved: ${errorMessage(error)}`);
  }
}

const asString = (value: JsonValue | undefined): string | null => (typeof value === 'string' ? value : null);
const asObject = (value: JsonValue | undefined): JsonObject | null => (typeof value === 'object' && value !== null && !Array.isArray(value) ? value : null);

/** What the service worker shows: the e-mail's subject and first sentence, and the page a click opens. */
interface PushMessage {
  title: string;
  body: string;
  /** A path of this service: the job, the archived image, or the dashboard. */
  url: string;
  /** The event id: a repeat of the same event replaces its notification instead of adding one. */
  tag: string;
  type: string;
}

function pushMessage(event: DomainEvent, language: Config['notifications']['email_language']): PushMessage {
  const t = createTranslator(allCatalogs()[language]);
  const { payload } = event;
  const job = asObject(payload.job);
  const archive = asObject(payload.archive);
  const drive = asString(payload.drive_id) ?? '';
  const name = asString(job?.name) ?? asString(archive?.filename) ?? asString(payload.label) ?? drive;
  const used = typeof payload.used_percent === 'number' ? `${Math.round(payload.used_percent)} %` : '';
  const jobId = asString(job?.id);
  const archiveId = asString(archive?.id);
  const url = jobId !== null ? `/jobs/${encodeURIComponent(jobId)}` : archiveId !== null ? `/archive/${encodeURIComponent(archiveId)}` : '/';
  return {
    title: t(`email.subject.${event.type}`, { name, drive, used }),
    body: t(`email.intro.${event.type}`, { name, drive, used }),
    url,
    tag: event.id,
    type: event.type,
  };
}

export interface PushChannelDeps {
  config: Config;
  subscriptions: PushSubscriptionRepository;
  /** DATA_DIR/vapid.json */
  keyFile: string;
  /**
   * In the cluster the key pair lives in the database instead of the file: browsers subscribe at
   * any web instance, and any instance's outbox sends to them, with the one key they subscribed with.
   */
  sharedSecrets?: SharedSecrets;
}

/** Its name among the cluster's shared secrets. */
const SHARED_VAPID_KEYS = 'vapid_key_pair';

export interface PushChannel {
  /** The public VAPID key (base64url) browsers subscribe with. */
  publicKey(): Promise<string>;
  subscribe(userId: string, input: PushSubscriptionInput, at: Date): Promise<PushSubscription>;
  list(userId: string): Promise<PushSubscription[]>;
  unsubscribe(userId: string, id: string): Promise<void>;
  /** Sends one delivery; a 404 or 410 from the push service removes the device. */
  send(due: DueDelivery, signal: AbortSignal): Promise<ChannelOutcome>;
}

/** Lowercase string headers for node:http, without the length (postBody sets it from the body). */
function requestHeaders(headers: Record<string, string | number | boolean>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers)
      .filter(([name]) => name.toLowerCase() !== 'content-length')
      .map(([name, value]) => [name.toLowerCase(), String(value)]),
  );
}

export function createPushChannel(deps: PushChannelDeps): PushChannel {
  const { config, subscriptions } = deps;
  let keys: Promise<VapidKeys> | undefined;
  const where = deps.sharedSecrets === undefined ? deps.keyFile : 'the cluster database';
  const load = (): Promise<VapidKeys> =>
    deps.sharedSecrets === undefined
      ? loadOrCreateVapidKeys(deps.keyFile)
      : deps.sharedSecrets.getOrCreate(SHARED_VAPID_KEYS, newVapidKeys).then(vapidKeysOf(where));
  const vapidKeys = (): Promise<VapidKeys> => {
    keys ??= load().catch((error: unknown) => {
      keys = undefined;
      throw new UnavailableError('signing_key_unavailable', `Cannot use the VAPID keys in ${where}: ${errorMessage(error)}`, { source: where });
    });
    return keys;
  };

  /** Push services want a way to reach the sender: the service's address, or a placeholder that says whose it is. */
  const subject = (): string => {
    const base = config.notifications.link_base_url;
    if (base.startsWith('https://')) return base;
    const mail = config.notifications.email_from || config.notifications.email_address;
    return `mailto:${mail || 'disk2iso@localhost.invalid'}`;
  };

  return {
    publicKey: async () => (await vapidKeys()).publicKey,
    async subscribe(userId, input, at) {
      if (input.endpoint.length > MAX_ENDPOINT_LENGTH) throw refused(`a push endpoint has at most ${MAX_ENDPOINT_LENGTH} characters`);
      if (Buffer.from(input.p256dh, 'base64url').length !== 65 || Buffer.from(input.auth, 'base64url').length !== 16) {
        throw new ValidationError('validation_failed', 'keys.p256dh must be a P-256 public key (65 bytes) and keys.auth 16 bytes, base64url', [
          { field: 'keys' },
        ]);
      }
      if (!input.events.every((type) => (PUSH_EVENT_TYPES as readonly string[]).includes(type))) {
        throw new ValidationError('validation_failed', `events are chosen from ${PUSH_EVENT_TYPES.join(', ')}`, [{ field: 'events' }]);
      }
      await checkEndpoint(config, input.endpoint);
      return subscriptions.save(userId, input, at, PUSH_SUBSCRIPTIONS_PER_USER);
    },
    list: (userId) => subscriptions.listForUser(userId),
    unsubscribe: (userId, id) => subscriptions.deleteForUser(userId, id),

    async send(due, signal) {
      const device = due.subscription;
      if (device === null) return { ok: false, statusCode: null, error: 'the device is no longer subscribed' };
      const url = new URL(device.endpoint);
      if (url.protocol !== 'https:') return { ok: false, statusCode: null, error: 'a push endpoint must be an https:// URL' };
      // Resolved now, and the request pinned to the address checked: a DNS answer that changed since
      // the registration cannot lead it inside.
      const destination = await resolveDestination(url, allowedInternal(config, url), 'notifications.push_allowed_hosts');
      const { publicKey, privateKey } = await vapidKeys();
      const details = webPush.generateRequestDetails(
        { endpoint: device.endpoint, keys: { p256dh: device.p256dh, auth: device.auth } },
        JSON.stringify(pushMessage(due.event, config.notifications.email_language)),
        { vapidDetails: { subject: subject(), publicKey, privateKey }, TTL: TIME_TO_LIVE_SECONDS, contentEncoding: 'aes128gcm', urgency: 'normal' },
      );
      const caFile = config.notifications.push_ca_file;
      const ca = caFile === '' ? [] : [await readFile(caFile, 'utf8')];
      const headers = requestHeaders({ ...details.headers, 'user-agent': 'disk2iso-push' });
      const { statusCode } = await postBody(url, destination, headers, details.body, signal, ca);
      if (statusCode === 404 || statusCode === 410) {
        await subscriptions.deleteGone(device.id);
        return { ok: false, statusCode, error: 'the push service says this device is no longer subscribed; it was removed' };
      }
      const ok = statusCode >= 200 && statusCode < 300;
      return { ok, statusCode, error: ok ? null : `the push service answered ${statusCode}` };
    },
  };
}
