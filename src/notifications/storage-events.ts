import type { StorageCrossing, StorageLevel } from '../system/storage-watch.js';
import type { DomainEventDraft } from './job-events.js';
import type { DomainEvent, DomainEventType } from './model.js';

/**
 * One row per storage threshold crossing (src/system/storage-watch.ts): the domain event it
 * becomes, and the level the output file system is at after it, which is where the watch starts
 * again after a restart (the last of these events in the durable stream).
 */
const STORAGE_EVENT_RULES: Record<`${StorageCrossing['threshold']}.${StorageCrossing['direction']}`, { type: DomainEventType; leaves: StorageLevel }> = {
  'warning.passed': { type: 'storage.warning_passed', leaves: 'warning' },
  'stop.passed': { type: 'storage.stop_passed', leaves: 'stop' },
  'stop.cleared': { type: 'storage.stop_cleared', leaves: 'warning' },
  'warning.cleared': { type: 'storage.warning_cleared', leaves: 'ok' },
};

export const STORAGE_EVENT_TYPES = Object.values(STORAGE_EVENT_RULES).map((rule) => rule.type);

export function storageEvent(crossing: StorageCrossing): DomainEventDraft {
  return {
    type: STORAGE_EVENT_RULES[`${crossing.threshold}.${crossing.direction}`].type,
    payload: {
      threshold: crossing.threshold,
      threshold_percent: crossing.thresholdPercent,
      used_percent: crossing.usedPercent,
      free_bytes: crossing.freeBytes,
      total_bytes: crossing.totalBytes,
      path: crossing.path,
    },
  };
}

/** The level the newest storage event left; ok when there is none. */
export function storageLevelAfter(latest: DomainEvent | undefined): StorageLevel {
  return Object.values(STORAGE_EVENT_RULES).find((rule) => rule.type === latest?.type)?.leaves ?? 'ok';
}
