import type { JobRepository } from '../db/job-repository.js';
import type { DriveService } from '../drives/service.js';
import type { Drive, DiscKind, MediaType } from '../drives/types.js';
import { ConflictError, errorMessage } from '../errors.js';

/** A drive as GET /api/v1/devices shows it: the specification's fields, then ours. */
export interface DeviceView {
  path: string;
  vendor: string | null;
  model: string | null;
  /** busy: a job is running or verifying on it. */
  status: 'idle' | 'busy';
  has_media: boolean;
  media_type: MediaType | null;
  media_size_bytes: number | null;
  id: string;
  kind: Drive['kind'];
  description: string;
  media_kind: DiscKind | null;
  label: string | null;
  ejectable: boolean;
  /** Why the medium could not be read, when it could not. */
  media_error: string | null;
}

export interface DeviceStatusService {
  list(): Promise<DeviceView[]>;
  /** Opens the tray; ConflictError `device_busy` while a job uses the drive. */
  eject(id: string): Promise<void>;
}

export function createDeviceStatusService(deps: { drives: DriveService; jobs: JobRepository }): DeviceStatusService {
  const { drives, jobs } = deps;

  async function busyDeviceIds(): Promise<Set<string>> {
    const { items } = await jobs.list({ statuses: ['running', 'verifying'], limit: 1000 });
    return new Set(items.map((job) => job.deviceId));
  }

  async function describe(drive: Drive, busy: boolean): Promise<DeviceView> {
    const base = {
      path: drive.path,
      vendor: drive.vendor,
      model: drive.model,
      status: busy ? ('busy' as const) : ('idle' as const),
      id: drive.id,
      kind: drive.kind,
      description: drive.description,
      ejectable: drive.ejectable,
    };
    try {
      const media = await drives.probe(drive.id);
      return {
        ...base,
        has_media: media.present,
        media_type: media.mediaType,
        media_size_bytes: media.imageSizeBytes,
        media_kind: media.present ? media.kind : null,
        label: media.volumeLabel,
        media_error: null,
      };
    } catch (error) {
      return { ...base, has_media: false, media_type: null, media_size_bytes: null, media_kind: null, label: null, media_error: errorMessage(error) };
    }
  }

  return {
    async list() {
      const [all, busy] = await Promise.all([drives.list(), busyDeviceIds()]);
      return Promise.all(all.map((drive) => describe(drive, busy.has(drive.id))));
    },

    async eject(id) {
      const drive = await drives.get(id);
      if ((await busyDeviceIds()).has(drive.id)) {
        throw new ConflictError(`${drive.id} is busy: a job is reading from it; pause or cancel the job first`, { device: drive.id }, 'device_busy');
      }
      await drives.eject(drive.id);
    },
  };
}
