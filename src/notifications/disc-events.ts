import type { DriveEvents } from '../drives/events.js';
import type { AutomationEvents, DiscEventBus } from '../jobs/automation.js';
import type { DuplicateMatch } from '../jobs/automation-model.js';
import type { JsonObject } from '../json.js';
import type { DomainEventDraft } from './job-events.js';
import type { DomainEventType } from './model.js';

type DiscBusEvents = DriveEvents & AutomationEvents;

interface DiscEventRule<K extends keyof DiscBusEvents> {
  type: DomainEventType;
  payload(event: DiscBusEvents[K]): JsonObject;
}

const duplicateOf = (match: DuplicateMatch | null): JsonObject | null => (match === null ? null : { archive_id: match.archiveId, filename: match.filename });

/**
 * One row per event of the disc bus (the disc watch's and automation's, src/jobs/automation.ts):
 * the domain event it becomes and what a receiver learns of it (snake_case, as the API). The table
 * covers every bus event (null: not a domain event), so the compiler asks for a row when the bus gets a new one.
 */
const DISC_EVENT_RULES: { [K in keyof DiscBusEvents]: DiscEventRule<K> | null } = {
  'disc.inserted': {
    type: 'disc.inserted',
    payload: (disc) => ({
      drive_id: disc.driveId,
      label: disc.label,
      kind: disc.kind,
      media_type: disc.mediaType,
      size_bytes: disc.sizeBytes,
      volume_id: disc.volumeId,
      created_at: disc.createdAt,
    }),
  },
  'disc.removed': {
    type: 'disc.removed',
    payload: (disc) => ({ drive_id: disc.driveId, label: disc.label, kind: disc.kind, size_bytes: disc.sizeBytes }),
  },
  'disc.unimageable': {
    type: 'disc.unimageable',
    payload: (disc) => ({ drive_id: disc.driveId, label: disc.label, kind: disc.kind, reason: disc.reason, message: disc.message }),
  },
  'disc.notice': {
    type: 'disc.waiting',
    payload: (notice) => ({
      drive_id: notice.driveId,
      label: notice.label,
      size_bytes: notice.sizeBytes,
      name: notice.name,
      reason: notice.reason,
      duplicate_of: duplicateOf(notice.duplicateOf),
    }),
  },
  'disc.skipped': {
    type: 'disc.duplicate_skipped',
    payload: (skipped) => ({ drive_id: skipped.driveId, label: skipped.label, duplicate_of: duplicateOf(skipped.duplicateOf) }),
  },
  'drive.appeared': {
    type: 'drive.appeared',
    payload: ({ drive }) => ({ drive_id: drive.id, path: drive.path, kind: drive.kind, description: drive.description }),
  },
  'drive.vanished': { type: 'drive.vanished', payload: ({ driveId }) => ({ drive_id: driveId }) },
  // What was there at start: no change, nothing happened.
  'drive.baseline': null,
};

/** Follows the disc bus and hands each of its events, as a domain event, to `raise`; returns the function that stops it. */
export function followDiscEvents(bus: Pick<DiscEventBus, 'onAny'>, raise: (draft: DomainEventDraft) => void): () => void {
  return bus.onAny((source, event) => {
    const rule = DISC_EVENT_RULES[source] as DiscEventRule<typeof source> | null;
    if (rule !== null) raise({ type: rule.type, payload: rule.payload(event) });
  });
}
