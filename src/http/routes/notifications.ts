import Type from 'typebox';
import {
  DELIVERY_STATUSES,
  DOMAIN_EVENT_TYPES,
  type DeliveryRecord,
  NOTIFICATION_CHANNELS,
  SUBSCRIBABLE_EVENT_TYPES,
  type WebhookEndpoint,
} from '../../notifications/model.js';
import type { MqttChannel } from '../../notifications/mqtt.js';
import type { NotificationService } from '../../notifications/service.js';
import { maskUrlCredentials } from '../../system/settings.js';
import type { App } from '../app.js';
import { Limit, Nullable, Offset, Timestamp, errors } from '../schemas.js';

const EndpointId = Type.String({ pattern: '^whk_[a-z0-9]{1,64}$', description: 'Webhook endpoint id, e.g. whk_3f9c…' });
const EventTypes = Type.Array(Type.Enum([...SUBSCRIBABLE_EVENT_TYPES]), { uniqueItems: true, description: 'The events sent to it' });
const WebhookUrl = Type.String({
  minLength: 1,
  maxLength: 2048,
  pattern: '^https?://[^\\s]+$',
  description: 'http:// or https:// URL the events are POSTed to',
});

const Endpoint = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    url: Type.String({ description: 'Credentials in the URL (user:password@, query values) are masked' }),
    events: EventTypes,
    enabled: Type.Boolean(),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { additionalProperties: false },
);

const Delivery = Type.Object(
  {
    id: Type.String({ description: 'The `webhook-id` the receiver sees: the same on every attempt' }),
    event_id: Type.String(),
    event_type: Type.Enum([...DOMAIN_EVENT_TYPES]),
    channel: Type.Enum([...NOTIFICATION_CHANNELS]),
    endpoint_id: Nullable(Type.String()),
    status: Type.Enum([...DELIVERY_STATUSES], { description: 'pending: not yet delivered (retried with a growing pause); sent; failed: given up' }),
    attempts: Type.Integer(),
    next_attempt_at: Timestamp,
    last_attempt_at: Nullable(Timestamp),
    last_status_code: Nullable(Type.Integer({ description: "The receiver's HTTP status, or the SMTP server's reply code" })),
    last_error: Nullable(Type.String()),
    created_at: Timestamp,
  },
  { additionalProperties: false },
);

const EndpointParams = Type.Object({ id: EndpointId }, { additionalProperties: false });

function endpointView(endpoint: WebhookEndpoint) {
  return {
    id: endpoint.id,
    name: endpoint.name,
    url: maskUrlCredentials(endpoint.url),
    events: endpoint.events,
    enabled: endpoint.enabled,
    created_at: endpoint.createdAt,
    updated_at: endpoint.updatedAt,
  };
}

function deliveryView(delivery: DeliveryRecord) {
  return {
    id: delivery.id,
    event_id: delivery.eventId,
    event_type: delivery.eventType,
    channel: delivery.channel,
    endpoint_id: delivery.endpointId,
    status: delivery.status,
    attempts: delivery.attempts,
    next_attempt_at: delivery.nextAttemptAt,
    last_attempt_at: delivery.lastAttemptAt,
    last_status_code: delivery.lastStatusCode,
    last_error: delivery.lastError,
    created_at: delivery.createdAt,
  };
}

const MqttStatusView = Type.Object(
  {
    state: Type.Enum(['disabled', 'connecting', 'connected', 'error'], { description: 'error: the last attempt failed (it is tried again every few seconds)' }),
    broker: Nullable(Type.String({ description: 'The broker URL, credentials masked' })),
    error: Nullable(Type.String({ description: 'The last connection error, kept while reconnecting' })),
    since: Timestamp,
  },
  { additionalProperties: false },
);

export function notificationRoutes(notifications: NotificationService, mqtt: Pick<MqttChannel, 'status'>) {
  return (app: App): void => {
    app.get(
      '/api/v1/notifications/mqtt',
      {
        config: { permission: 'system:read' },
        schema: {
          tags: ['notifications'],
          summary: 'The MQTT connection',
          description: 'Whether the service is connected to the broker of the mqtt.* settings, and the last error. Never shows the password.',
          response: { 200: MqttStatusView, ...errors(401, 403) },
        },
      },
      async () => mqtt.status(),
    );

    app.get(
      '/api/v1/notifications/webhooks',
      {
        config: { permission: 'system:read' },
        schema: {
          tags: ['notifications'],
          summary: 'List webhook endpoints',
          description: 'Never shows the signing secrets.',
          response: { 200: Type.Object({ webhooks: Type.Array(Endpoint) }, { additionalProperties: false }), ...errors(401, 403) },
        },
      },
      async () => ({ webhooks: (await notifications.listEndpoints()).map(endpointView) }),
    );

    app.post(
      '/api/v1/notifications/webhooks',
      {
        config: { permission: 'system:write', audit: { event_type: 'webhook', action: 'create' } },
        schema: {
          tags: ['notifications'],
          summary: 'Add a webhook endpoint',
          description:
            'The service generates the signing secret (`whsec_…`, Standard Webhooks); it is in this answer only: give it to the receiver now. ' +
            'Loopback, link-local and private destinations are refused when sending unless notifications.allow_private_destinations is set on the server.',
          body: Type.Object(
            {
              name: Type.String({ minLength: 1, maxLength: 100 }),
              url: WebhookUrl,
              events: EventTypes,
              enabled: Type.Optional(Type.Boolean({ default: true })),
            },
            { additionalProperties: false },
          ),
          response: { 201: Type.Object({ secret: Type.String(), webhook: Endpoint }, { additionalProperties: false }), ...errors(400, 401, 403) },
        },
      },
      async (request, reply) => {
        const { name, url, events, enabled = true } = request.body;
        const created = await notifications.createEndpoint({ name, url, events, enabled });
        // The answer holds the secret under `secret`, the id one level down: name the id, nothing else.
        request.auditDetails = { id: created.id };
        return reply.status(201).send({ secret: created.secret, webhook: endpointView(created) });
      },
    );

    app.patch(
      '/api/v1/notifications/webhooks/:id',
      {
        config: { permission: 'system:write', audit: { event_type: 'webhook', action: 'change' } },
        schema: {
          tags: ['notifications'],
          summary: 'Change a webhook endpoint',
          description: 'The secret stays; to change it, delete the endpoint and add it again.',
          params: EndpointParams,
          body: Type.Object(
            {
              name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
              url: Type.Optional(WebhookUrl),
              events: Type.Optional(EventTypes),
              enabled: Type.Optional(Type.Boolean()),
            },
            { additionalProperties: false },
          ),
          response: { 200: Endpoint, ...errors(400, 401, 403, 404) },
        },
      },
      async (request) => endpointView(await notifications.updateEndpoint(request.params.id, request.body)),
    );

    app.delete(
      '/api/v1/notifications/webhooks/:id',
      {
        config: { permission: 'system:write', audit: { event_type: 'webhook', action: 'delete' } },
        schema: {
          tags: ['notifications'],
          summary: 'Remove a webhook endpoint',
          description: 'Its deliveries go with it, pending ones included.',
          params: EndpointParams,
          response: { 204: Type.Null(), ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => {
        await notifications.deleteEndpoint(request.params.id);
        return reply.status(204).send(null);
      },
    );

    app.post(
      '/api/v1/notifications/webhooks/:id/test',
      {
        config: { permission: 'system:write' },
        schema: {
          tags: ['notifications'],
          summary: 'Send a test event to a webhook endpoint',
          description: 'Queues a `notification.test` event for this endpoint alone; the outbox sends it. Follow it in the delivery log.',
          params: EndpointParams,
          response: { 202: Delivery, ...errors(400, 401, 403, 404) },
        },
      },
      async (request, reply) => reply.status(202).send(deliveryView(await notifications.sendTest({ endpointId: request.params.id }))),
    );

    app.post(
      '/api/v1/notifications/email/test',
      {
        config: { permission: 'system:write' },
        schema: {
          tags: ['notifications'],
          summary: 'Send a test e-mail',
          description:
            'Queues a `notification.test` event for the e-mail channel alone, with the notifications.smtp_* settings in effect; the outbox sends it. Follow it in the delivery log.',
          response: { 202: Delivery, ...errors(401, 403) },
        },
      },
      async (_request, reply) => reply.status(202).send(deliveryView(await notifications.sendTest({ channel: 'email' }))),
    );

    app.get(
      '/api/v1/notifications/deliveries',
      {
        config: { permission: 'system:read' },
        schema: {
          tags: ['notifications'],
          summary: 'The delivery log, newest first',
          description: 'One entry per event and channel, with its attempts, the last response code and error, and when it is tried next.',
          querystring: Type.Object(
            {
              status: Type.Optional(Type.Enum([...DELIVERY_STATUSES])),
              webhook_id: Type.Optional(EndpointId),
              limit: Type.Optional(Limit(50, 500)),
              offset: Type.Optional(Offset),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object({ deliveries: Type.Array(Delivery), total: Type.Integer() }, { additionalProperties: false }),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => {
        const { status, webhook_id: endpointId, limit = 50, offset = 0 } = request.query;
        const { items, total } = await notifications.listDeliveries({ status, endpointId, limit, offset });
        return { deliveries: items.map(deliveryView), total };
      },
    );
  };
}
