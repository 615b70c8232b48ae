import { NOTIFICATION_EVENT_TYPES } from '../config/schema.js';
import type { JsonObject } from '../json.js';

/**
 * What notifications are made of: the domain events the service records, the channels that carry
 * them, and the deliveries of the outbox. The one definition the recorder, the database, the API,
 * the pages and the mails share.
 */

/** Every domain event type. A new one is added to NOTIFICATION_EVENT_TYPES and gets a rule (see notifications/job-events.ts). */
export const DOMAIN_EVENT_TYPES = [...NOTIFICATION_EVENT_TYPES, 'notification.test'] as const;
export type DomainEventType = (typeof DOMAIN_EVENT_TYPES)[number];

/**
 * What an endpoint or the e-mail channel can subscribe to: every type but the test, which goes only
 * where it is sent. Declared with the settings (config/schema.ts), whose email_events list them.
 */
export const SUBSCRIBABLE_EVENT_TYPES = NOTIFICATION_EVENT_TYPES;
export type SubscribableEventType = (typeof SUBSCRIBABLE_EVENT_TYPES)[number];

/** Why a job paused: the user (or another client) asked, the output file system filled up, or the service stopped. */
const PAUSE_REASONS = ['user', 'disk_full', 'shutdown'] as const;
export type NotificationPauseReason = (typeof PAUSE_REASONS)[number];

export interface DomainEvent {
  /** `evt_…`; also what a receiver sees as `data.event_id`. */
  id: string;
  type: DomainEventType;
  at: string;
  payload: JsonObject;
}

export const NOTIFICATION_CHANNELS = ['webhook', 'email', 'push'] as const;
export type NotificationChannel = (typeof NOTIFICATION_CHANNELS)[number];

export const DELIVERY_STATUSES = ['pending', 'sent', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export interface DeliveryRecord {
  /** `msg_…`: the `webhook-id`, the same on every attempt, so a receiver can drop a repeat. */
  id: string;
  eventId: string;
  eventType: DomainEventType;
  channel: NotificationChannel;
  endpointId: string | null;
  /** The device a `push` delivery goes to; null for the other channels. */
  subscriptionId: string | null;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: string;
  lastAttemptAt: string | null;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: string;
  updatedAt: string;
}

export interface WebhookEndpoint {
  id: string;
  name: string;
  url: string;
  events: SubscribableEventType[];
  enabled: boolean;
  createdAt: string;
  updatedAt: string;
}

/** An endpoint with its signing secret: only the outbox and the one answer to its creation see it. */
export interface WebhookEndpointWithSecret extends WebhookEndpoint {
  secret: string;
}

/**
 * What a device can be notified of by Web Push: the events someone wants on their phone when away
 * from the screen (a job's end, a disc to decide about, damage found), not every state change.
 */
export const PUSH_EVENT_TYPES = [
  'job.completed',
  'job.completed_with_errors',
  'job.failed',
  'disc.inserted',
  'disc.waiting',
  'disc.unimageable',
  'verification.failed',
  'storage.stop_passed',
] as const satisfies readonly SubscribableEventType[];
export type PushEventType = (typeof PUSH_EVENT_TYPES)[number];

/** A browser (device) subscribed to Web Push by a user. The endpoint and keys never leave the server again. */
export interface PushSubscription {
  id: string;
  userId: string;
  label: string;
  events: PushEventType[];
  /** Only the origin of the push service (e.g. https://fcm.googleapis.com): the full endpoint is a capability. */
  service: string;
  createdAt: string;
}

/** With what sending needs: the endpoint and the browser's keys (base64url). */
export interface PushSubscriptionWithKeys extends PushSubscription {
  endpoint: string;
  p256dh: string;
  auth: string;
}
