import type { EventBus } from '../events/bus.js';
import type { VerificationTaskRecord } from './verification-task.js';

/** What happens to archives in the background, for live streams. */
export interface ArchiveEvents {
  /** A verification task was queued, made progress, was asked to stop, or ended; the record carries its latest progress. */
  'archive.verification': { task: VerificationTaskRecord };
}

export type ArchiveEventBus = EventBus<ArchiveEvents>;
