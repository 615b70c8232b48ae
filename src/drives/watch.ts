import type { ErrorCode } from '../error-codes.js';
import { DomainError, errorMessage } from '../errors.js';
import { assertImageable } from '../jobs/intake.js';
import type { DriveEventBus } from './events.js';
import type { DiscKind, Drive, MediaInfo } from './types.js';

/**
 * Tells insertions, removals and drives coming and going by comparing what successive probes of
 * the drive-state refresher (src/drives/state.ts) found: it reads no drive itself, so it polls no
 * drive faster than the refresher does. A disc is the same disc while its presence, volume
 * identifier, label, creation time, kind and sizes stay the same; an image file or loop device whose
 * content was replaced by another image therefore counts as a new disc.
 *
 * What is there at start is the baseline and raises nothing: a restart must not image again the
 * disc that was in the drive. A drive that appears later raises `disc.inserted` for its first disc.
 *
 * A change counts once two successive answers agree on it (`confirm` asks for the second one): an
 * image file still being copied into place grows from probe to probe, and a drive spinning a disc
 * up may fail its first read, and neither must be imaged or reported as it is at that moment.
 */
export interface DiscWatch {
  listed(drives: Drive[]): void;
  answered(driveId: string, answer: { media: MediaInfo | null; error: { code: ErrorCode; message: string } | null }): void;
}

/** What a drive held at its last answer: nothing, a disc (by identity), or a failure to read it. */
type Holding =
  | { kind: 'empty' }
  | { kind: 'disc'; identity: string; label: string | null; discKind: DiscKind; sizeBytes: number | null }
  | { kind: 'failed'; code: ErrorCode };

function holdingOf(answer: { media: MediaInfo | null; error: { code: ErrorCode } | null }): Holding {
  if (answer.error || !answer.media) return { kind: 'failed', code: answer.error?.code ?? 'media_unreadable' };
  const media = answer.media;
  if (!media.present) return { kind: 'empty' };
  const identity = JSON.stringify([
    media.volumeId,
    media.volumeLabel,
    media.createdAt,
    media.kind,
    media.imageSizeBytes,
    media.deviceSizeBytes,
    media.sourceStamp ?? null,
  ]);
  return { kind: 'disc', identity, label: media.volumeLabel, discKind: media.kind, sizeBytes: media.imageSizeBytes ?? media.deviceSizeBytes };
}

const sameHolding = (a: Holding, b: Holding): boolean =>
  a.kind === b.kind &&
  (a.kind !== 'disc' || (b.kind === 'disc' && a.identity === b.identity)) &&
  (a.kind !== 'failed' || (b.kind === 'failed' && a.code === b.code));

export interface DiscWatchDeps {
  events: Pick<DriveEventBus, 'emit'>;
  /** Asks for another probe of the drive soon, to confirm a change its last answer showed. */
  confirm(driveId: string): void;
}

export function createDiscWatch(deps: DiscWatchDeps): DiscWatch {
  const { events } = deps;
  let drives: Map<string, Drive> | null = null;
  /** Drives whose first answer is the baseline: those of the first listing. */
  const silentFirst = new Set<string>();
  /** What each drive holds, as confirmed by two answers (or the baseline). */
  const holdings = new Map<string, Holding>();
  /** A change one answer showed, waiting for the next answer to agree. */
  const candidates = new Map<string, Holding>();

  return {
    listed(listing) {
      const next = new Map(listing.map((drive) => [drive.id, drive]));
      if (drives === null) {
        for (const id of next.keys()) silentFirst.add(id);
      } else {
        for (const [id, drive] of next) if (!drives.has(id)) events.emit('drive.appeared', { drive });
        for (const id of drives.keys()) {
          if (next.has(id)) continue;
          holdings.delete(id);
          candidates.delete(id);
          silentFirst.delete(id);
          events.emit('drive.vanished', { driveId: id });
        }
      }
      drives = next;
    },

    answered(driveId, answer) {
      const drive = drives?.get(driveId);
      if (!drive) return;
      const next = holdingOf(answer);
      const previous = holdings.get(driveId);
      if (previous === undefined && silentFirst.delete(driveId)) {
        holdings.set(driveId, next);
        const disc = next.kind === 'disc' ? next : null;
        events.emit('drive.baseline', { driveId, holding: next.kind, label: disc?.label ?? null, sizeBytes: disc?.sizeBytes ?? null });
        return;
      }
      if (previous !== undefined && sameHolding(previous, next)) {
        candidates.delete(driveId);
        return;
      }
      const candidate = candidates.get(driveId);
      if (candidate === undefined || !sameHolding(candidate, next)) {
        candidates.set(driveId, next);
        deps.confirm(driveId);
        return;
      }
      candidates.delete(driveId);
      holdings.set(driveId, next);
      if (previous?.kind === 'disc') events.emit('disc.removed', { driveId, label: previous.label, kind: previous.discKind, sizeBytes: previous.sizeBytes });
      if (next.kind === 'failed') {
        const message = answer.error?.message ?? `the disc in ${driveId} cannot be read`;
        events.emit('disc.unimageable', { driveId, label: null, kind: null, reason: next.code, message });
        return;
      }
      const media = answer.media;
      if (next.kind === 'empty' || !media) return;
      try {
        const sizeBytes = assertImageable(drive, media);
        events.emit('disc.inserted', {
          driveId,
          label: media.volumeLabel,
          kind: media.kind,
          mediaType: media.mediaType,
          sizeBytes,
          volumeId: media.volumeId,
          createdAt: media.createdAt,
          media,
        });
      } catch (error) {
        const reason: ErrorCode = error instanceof DomainError ? error.code : 'media_unreadable';
        events.emit('disc.unimageable', { driveId, label: media.volumeLabel, kind: media.kind, reason, message: errorMessage(error) });
      }
    },
  };
}
