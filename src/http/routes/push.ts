import Type from 'typebox';
import { ForbiddenError } from '../../errors.js';
import { PUSH_EVENT_TYPES, type PushSubscription } from '../../notifications/model.js';
import type { PushChannel } from '../../notifications/push.js';
import type { App } from '../app.js';
import { principalOf } from '../guard.js';
import { Timestamp, errors } from '../schemas.js';
import { DOMAIN_EVENT_PERMISSIONS } from './live.js';

const SubscriptionId = Type.String({ pattern: '^psh_[a-z0-9]{1,64}$', description: 'Push subscription id, e.g. psh_3f9c…' });
const Base64Url = (description: string) => Type.String({ minLength: 1, maxLength: 200, pattern: '^[A-Za-z0-9_-]+=*$', description });
const PushEvents = Type.Array(Type.Enum([...PUSH_EVENT_TYPES]), { minItems: 1, uniqueItems: true, description: 'The events this device is told of' });

const Subscription = Type.Object(
  {
    id: SubscriptionId,
    label: Type.String(),
    events: PushEvents,
    service: Type.String({ description: 'The origin of the push service (e.g. https://fcm.googleapis.com); the endpoint itself is never shown again' }),
    created_at: Timestamp,
  },
  { additionalProperties: false },
);

function subscriptionView(subscription: PushSubscription) {
  return { id: subscription.id, label: subscription.label, events: subscription.events, service: subscription.service, created_at: subscription.createdAt };
}

/**
 * Web Push: a signed-in user's own devices. Everyone who may read jobs may subscribe their browsers
 * to the events they may read; nobody sees or removes another user's devices (admins neither: an
 * endpoint with its keys is a way to message that person's device, and removing a user removes theirs).
 */
export function pushRoutes(push: Pick<PushChannel, 'publicKey' | 'subscribe' | 'list' | 'unsubscribe'>) {
  return (app: App): void => {
    app.get(
      '/api/v1/notifications/push/key',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['notifications'],
          summary: "The service's VAPID public key",
          description: 'What a browser subscribes with (`applicationServerKey` of PushManager.subscribe): an uncompressed P-256 point, base64url.',
          response: { 200: Type.Object({ public_key: Type.String() }, { additionalProperties: false }), ...errors(401, 403) },
        },
      },
      async () => ({ public_key: await push.publicKey() }),
    );

    app.get(
      '/api/v1/notifications/push/subscriptions',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['notifications'],
          summary: "The caller's own push devices",
          description: "Only the caller's; never the endpoints or keys.",
          response: { 200: Type.Object({ subscriptions: Type.Array(Subscription) }, { additionalProperties: false }), ...errors(401, 403) },
        },
      },
      async (request) => ({ subscriptions: (await push.list(principalOf(request).userId)).map(subscriptionView) }),
    );

    app.post(
      '/api/v1/notifications/push/subscriptions',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['notifications'],
          summary: 'Subscribe this device to push notifications',
          description:
            'The body is what PushSubscription.toJSON() gives (endpoint and keys), with a label and the events chosen. The endpoint must be https at a public ' +
            'address (hosts in the server-only notifications.push_allowed_hosts excepted; checked again at every send). The same endpoint again replaces the ' +
            `earlier subscription. Each event needs the permission of its subject (job events jobs:read, discs devices:read, verifications archives:read, storage system:read); at most 10 devices per user (409 push_subscription_limit).`,
          body: Type.Object(
            {
              endpoint: Type.String({ minLength: 1, maxLength: 2048, pattern: '^https://[^\\s]+$', description: "The push service's URL for this browser" }),
              keys: Type.Object(
                { p256dh: Base64Url("The browser's P-256 public key"), auth: Base64Url("The browser's 16-byte auth secret") },
                { additionalProperties: false },
              ),
              label: Type.String({ minLength: 1, maxLength: 100, description: 'Which device this is, e.g. "Phone"' }),
              events: PushEvents,
            },
            { additionalProperties: false },
          ),
          response: { 201: Subscription, ...errors(400, 401, 403, 409) },
        },
      },
      async (request, reply) => {
        const principal = principalOf(request);
        const { endpoint, keys, label, events } = request.body;
        const unreadable = events.filter((type) => {
          const needed = DOMAIN_EVENT_PERMISSIONS[type];
          return needed === null || !principal.can(needed);
        });
        if (unreadable.length > 0) throw new ForbiddenError('forbidden', `not allowed to read the subject of ${unreadable.join(', ')}`, { events: unreadable });
        const created = await push.subscribe(
          principal.userId,
          { endpoint, p256dh: keys.p256dh, auth: keys.auth, label: label.trim() || 'device', events },
          new Date(),
        );
        return reply.status(201).send(subscriptionView(created));
      },
    );

    app.delete(
      '/api/v1/notifications/push/subscriptions/:id',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['notifications'],
          summary: 'Remove one of your push devices',
          description: "Another user's device is not found (404), whoever asks.",
          params: Type.Object({ id: SubscriptionId }, { additionalProperties: false }),
          response: { 204: Type.Null(), ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        await push.unsubscribe(principalOf(request).userId, request.params.id);
        return reply.status(204).send(null);
      },
    );
  };
}
