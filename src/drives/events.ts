import type { ErrorCode } from '../error-codes.js';
import type { EventBus } from '../events/bus.js';
import type { DiscKind, Drive, MediaInfo, MediaType } from './types.js';

/** What the disc watch (src/drives/watch.ts) sees drives and discs do, for automation, notifications and the event stream. */
export interface DriveEvents {
  /** A drive that was not in the previous listing (not told for the drives found at start). */
  'drive.appeared': { drive: Drive };
  'drive.vanished': { driveId: string };
  /**
   * What a drive found at start held at its first answer, which raises nothing else (a restart must
   * not image the same disc again): for what was remembered of the drive from before the restart.
   */
  'drive.baseline': { driveId: string; holding: 'empty' | 'disc' | 'failed'; label: string | null; sizeBytes: number | null };
  /** A disc that can be imaged came into the drive, or the drive's content changed to one. */
  'disc.inserted': {
    driveId: string;
    label: string | null;
    kind: DiscKind;
    mediaType: MediaType | null;
    sizeBytes: number;
    volumeId: string | null;
    createdAt: string | null;
    media: MediaInfo;
  };
  /** The disc that was in the drive is gone (the drive is empty or holds another one). */
  'disc.removed': { driveId: string; label: string | null; kind: DiscKind; sizeBytes: number | null };
  /** A disc came in that cannot be imaged: audio, blank, of unknown size, or unreadable. It is never queued. */
  'disc.unimageable': { driveId: string; label: string | null; kind: DiscKind | null; reason: ErrorCode; message: string };
}

export type DriveEventBus = EventBus<DriveEvents>;
