import { imageNameFromLabel } from '../archive/naming.js';
import type { AutomationRepository } from '../db/automation-repository.js';
import type { DriveEvents } from '../drives/events.js';
import { errorMessage } from '../errors.js';
import type { EventBus } from '../events/bus.js';
import type { JsonObject } from '../json.js';
import type { LogLevel } from '../log.js';
import {
  DEFAULT_AUTOMATION,
  type DiscNotice,
  type DriveAutomation,
  type DriveAutomationRecord,
  type DuplicateMatch,
  renderNameTemplate,
  validateNameTemplate,
} from './automation-model.js';
import type { JobEventBus } from './events.js';
import type { JobService } from './service.js';

/**
 * What a drive does with a disc put into it (its mode, src/jobs/automation-model.ts), acting on the
 * disc watch's events (src/drives/watch.ts). Jobs are made only through the job service, so an
 * automatic job passes the same intake (drive, disc, name, options) as one a person starts; the
 * drive's disc is read from the drive-state cache, never from the drive.
 */

/** Automation's own events on the disc bus (notifications/disc-events.ts makes domain events of them). */
export interface AutomationEvents {
  /** A disc waits for someone to decide (notify mode, or a likely duplicate in automatic mode set to ask). */
  'disc.notice': DiscNotice;
  /** Automatic mode left a likely duplicate alone (its setting says skip). */
  'disc.skipped': { driveId: string; label: string | null; duplicateOf: DuplicateMatch };
}

/** The disc watch's events and automation's own, on one bus (created in src/server.ts). */
export type DiscEventBus = EventBus<DriveEvents & AutomationEvents>;

export interface AutomationService {
  /** The drive's settings; the defaults (manual) when none are stored. */
  settings(deviceId: string): Promise<DriveAutomationRecord>;
  /** Stores the drive's settings whole (the template checked first). */
  update(deviceId: string, settings: DriveAutomation, updatedBy: string | null): Promise<DriveAutomationRecord>;
  /** True for a drive whose discs are acted on at insertion, so the drive-state refresher keeps probing it. */
  watched(deviceId: string): boolean;
  /** The notices waiting on the dashboard, oldest first. */
  notices(): DiscNotice[];
  /** Loads the modes and follows the events. */
  start(): Promise<void>;
  /** Follows no more events; resolves once the one being handled is done. */
  stop(): Promise<void>;
}

export interface AutomationDeps {
  repository: AutomationRepository;
  jobs: Pick<JobService, 'create'>;
  driveEvents: DiscEventBus;
  jobEvents: JobEventBus;
  onEvent(level: LogLevel, message: string, details: JsonObject): void;
  now?: () => Date;
}

const defaults = (deviceId: string): DriveAutomationRecord => ({ ...DEFAULT_AUTOMATION, deviceId, counter: 0, updatedAt: null, updatedBy: null });

export function createAutomationService(deps: AutomationDeps): AutomationService {
  const { repository } = deps;
  const now = deps.now ?? (() => new Date());
  const modes = new Map<string, DriveAutomation['mode']>();
  const notices = new Map<string, DiscNotice>();
  let handling: Promise<void> = Promise.resolve();
  let unsubscribe: Array<() => void> = [];

  const settings = async (deviceId: string): Promise<DriveAutomationRecord> => (await repository.get(deviceId)) ?? defaults(deviceId);

  const notify = async (notice: DiscNotice): Promise<void> => {
    notices.set(notice.driveId, notice);
    await repository.saveNotice(notice);
    deps.driveEvents.emit('disc.notice', notice);
  };

  /** The drive's notice is answered or moot: off the dashboard, and not back after a restart. */
  const clear = (driveId: string): void => {
    if (!notices.delete(driveId)) return;
    repository
      .deleteNotice(driveId)
      .catch((error: unknown) => deps.onEvent('warning', `the notice of ${driveId} could not be removed: ${errorMessage(error)}`, { device: driveId }));
  };

  /** A notice kept from before a restart stays only while the drive still holds that disc. */
  const baseline = ({ driveId, holding, label, sizeBytes }: DriveEvents['drive.baseline']): void => {
    const notice = notices.get(driveId);
    if (notice === undefined || holding === 'failed') return;
    if (holding === 'empty' || label !== notice.label || sizeBytes !== notice.sizeBytes) clear(driveId);
  };

  const inserted = async (disc: DriveEvents['disc.inserted']): Promise<void> => {
    const profile = await settings(disc.driveId);
    if (profile.mode === 'manual') return;
    const duplicateOf = await repository.findDuplicate(disc);
    const label = imageNameFromLabel(disc.label, disc.driveId);
    const base = { driveId: disc.driveId, label: disc.label, sizeBytes: disc.sizeBytes, duplicateOf, at: now().toISOString() };
    if (profile.mode === 'notify' || (duplicateOf !== null && profile.duplicates === 'ask')) {
      const name = renderNameTemplate(profile.name_template, { label, date: now(), counter: profile.counter + 1 });
      const options = { read_attempts: profile.read_attempts, checksums: profile.checksums, verify: profile.verify, eject: profile.eject };
      await notify({ ...base, name, options, reason: duplicateOf === null ? 'inserted' : 'duplicate' });
      return;
    }
    if (duplicateOf !== null && profile.duplicates === 'skip') {
      deps.driveEvents.emit('disc.skipped', { driveId: disc.driveId, label: disc.label, duplicateOf });
      deps.onEvent('info', `the disc in ${disc.driveId} looks like ${duplicateOf.filename}, already archived; not imaged again`, {
        device: disc.driveId,
        archive_id: duplicateOf.archiveId,
      });
      return;
    }
    const name = renderNameTemplate(profile.name_template, { label, date: now(), counter: await repository.nextCounter(disc.driveId) });
    const options = {
      ...(profile.read_attempts === null ? {} : { read_attempts: profile.read_attempts }),
      ...(profile.checksums === null ? {} : { checksums: profile.checksums }),
      ...(profile.verify === null ? {} : { verify: profile.verify }),
      eject: profile.eject,
    };
    const job = await deps.jobs.create({ device: disc.driveId, name, options }, null);
    deps.onEvent('info', `the disc in ${disc.driveId} was queued automatically as ${job.name}`, { device: disc.driveId, job_id: job.id });
  };

  const handle = (work: () => Promise<void>, driveId: string): void => {
    handling = handling
      .then(work)
      .catch((error: unknown) => deps.onEvent('warning', `automation of ${driveId} failed: ${errorMessage(error)}`, { device: driveId }));
  };

  return {
    settings,
    async update(deviceId, input, updatedBy) {
      const stored = await repository.set(deviceId, { ...input, name_template: validateNameTemplate(input.name_template) }, updatedBy);
      modes.set(deviceId, stored.mode);
      if (stored.mode === 'manual') clear(deviceId);
      return stored;
    },
    watched: (deviceId) => (modes.get(deviceId) ?? 'manual') !== 'manual',
    notices: () => [...notices.values()].sort((a, b) => a.at.localeCompare(b.at)),
    async start() {
      for (const record of await repository.list()) modes.set(record.deviceId, record.mode);
      for (const notice of await repository.listNotices()) notices.set(notice.driveId, notice);
      unsubscribe = [
        deps.driveEvents.on('disc.inserted', (disc) => handle(() => inserted(disc), disc.driveId)),
        deps.driveEvents.on('drive.baseline', baseline),
        deps.driveEvents.on('disc.removed', ({ driveId }) => clear(driveId)),
        deps.driveEvents.on('drive.vanished', ({ driveId }) => clear(driveId)),
        // Someone imaged the disc (by the notice's button or otherwise): nothing is left to decide.
        deps.jobEvents.on('job.created', ({ job }) => clear(job.deviceId)),
      ];
    },
    async stop() {
      for (const stop of unsubscribe) stop();
      unsubscribe = [];
      await handling;
    },
  };
}
