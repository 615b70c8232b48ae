import type { JobRepository } from '../db/job-repository.js';
import type { DriveService } from '../drives/service.js';
import type { DriveMediaSnapshot, DriveStates, MediaState } from '../drives/state.js';
import type { DiscKind, Drive, MediaInfo, MediaType } from '../drives/types.js';
import type { ErrorCode } from '../error-codes.js';
import { ConflictError, NotFoundError, UnavailableError } from '../errors.js';
import { resolveDrive } from '../jobs/intake.js';
import { ACTIVE_JOB_STATUSES, type JobRecord } from '../jobs/model.js';
import { canBeImaged } from '../media/probe.js';

/**
 * A drive as GET /api/v1/devices shows it: the specification's fields, then ours. Nothing here is
 * read from a drive while a request waits: the media fields of a busy drive are what its job
 * recorded, those of an idle drive the refresher's last probe (src/drives/state.ts).
 */
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
  /** The file behind a loop device; null for other drives. */
  backing_file: string | null;
  /** The cluster node that owns the drive; null in the embedded mode. */
  node: string | null;
  media_kind: DiscKind | null;
  label: string | null;
  ejectable: boolean;
  /** Why the medium could not be read, or why the drive gives no answer. */
  media_error: string | null;
  /** The code of media_error, for a message in the reader's language. */
  media_error_code: ErrorCode | null;
  /** `job`: the drive is busy and the media fields are its job's disc; otherwise how current the last probe is. */
  media_state: 'job' | MediaState;
  /** When the media fields were read from the drive; null for a busy drive and before the first answer. */
  media_checked_at: string | null;
  /** The job reading from the drive, while it is busy. */
  job_id: string | null;
}

/** Drives and their discs as far as they are known without touching a drive: what job creation uses. */
export interface KnownDrives {
  list(): Promise<Drive[]>;
  /** NotFoundError `unknown_device` for anything but a listed drive's id. */
  get(id: string): Promise<Drive>;
  /**
   * The disc of a busy drive as its job recorded it, else the last probe. An older probe that
   * would refuse the disc (no disc, blank, …) is not trusted: UnavailableError `media_probing`
   * while the drive is checked again; an older one that accepts it is, since the runner checks
   * the disc again before it reads. UnavailableError `drive_not_responding` (or `probe_backlog`)
   * when the drive's probe got no answer, and the probe's own error when it failed.
   */
  knownMedia(id: string): Promise<MediaInfo>;
}

export interface DeviceStatusService extends KnownDrives {
  /** Every drive with its state and medium, as GET /api/v1/devices shows them. */
  views(): Promise<DeviceView[]>;
  /** Opens the tray of a drive given by id or device path; ConflictError `device_busy` while a job uses the drive. */
  eject(device: string): Promise<Drive>;
}

/** A drive of another node of the cluster, with what its node last reported of it. */
export interface RemoteDrive {
  drive: Drive;
  known: DriveMediaSnapshot;
}

/** The drives of the cluster's other nodes (src/cluster/remote-drives.ts). */
export interface RemoteDrives {
  list(): Promise<RemoteDrive[]>;
  /** Asks the drive's node to open its tray; the node does it, not this request. */
  eject(drive: Drive): Promise<void>;
}

export interface DeviceStatusDeps {
  /** Only for eject: probes go through `states`. */
  drives: Pick<DriveService, 'eject'>;
  /** This process's own drives (none on a web instance). */
  states: DriveStates;
  jobs: JobRepository;
  /** In the cluster, the other nodes' drives, listed after this node's own. */
  remote?: RemoteDrives;
}

/** The running or verifying job of each drive that has one. */
export async function activeJobsByDevice(jobs: JobRepository): Promise<Map<string, JobRecord>> {
  const { items } = await jobs.list({ statuses: ACTIVE_JOB_STATUSES, limit: 1000 });
  return new Map(items.map((job) => [job.deviceId, job]));
}

export function createDeviceStatusService(deps: DeviceStatusDeps): DeviceStatusService {
  const { drives, states, jobs } = deps;
  const remoteDrives = async (): Promise<RemoteDrive[]> => (deps.remote === undefined ? [] : deps.remote.list());
  const isLocal = (id: string): boolean => states.list().some((drive) => drive.id === id);
  /** The drives of this node, then those of the others: a drive's id is unique in the cluster (`NODE.ID`). */
  const allDrives = async (): Promise<Drive[]> => [...states.list(), ...(await remoteDrives()).map((remote) => remote.drive)];
  const knownOf = async (id: string): Promise<DriveMediaSnapshot> => {
    if (deps.remote === undefined || isLocal(id)) return states.media(id);
    const remote = (await remoteDrives()).find((candidate) => candidate.drive.id === id);
    return remote?.known ?? { state: 'probing', media: null, error: null, checkedAt: null };
  };

  const driveById = async (id: string): Promise<Drive> => {
    if (deps.remote === undefined || isLocal(id)) return states.get(id);
    const listed = await allDrives();
    const drive = listed.find((candidate) => candidate.id === id);
    if (drive === undefined) {
      const known = listed.map((candidate) => candidate.id);
      const listing = known.length > 0 ? `known devices: ${known.join(', ')}` : 'no devices are available';
      throw new NotFoundError('unknown_device', `unknown device "${id}" (${listing})`, { device: id, known });
    }
    return drive;
  };

  function view(drive: Drive, job: JobRecord | null, known: DriveMediaSnapshot): DeviceView {
    const base = {
      path: drive.path,
      vendor: drive.vendor,
      model: drive.model,
      id: drive.id,
      kind: drive.kind,
      description: drive.description,
      backing_file: drive.backingFile ?? null,
      node: drive.node ?? null,
      ejectable: drive.ejectable,
    };
    if (job)
      return {
        ...base,
        status: 'busy',
        ...mediaFields(discOfJob(job)),
        media_error: null,
        media_error_code: null,
        media_state: 'job',
        media_checked_at: null,
        job_id: job.id,
      };
    return {
      ...base,
      status: 'idle',
      ...mediaFields(known.media),
      media_error: known.error?.message ?? null,
      media_error_code: known.error?.code ?? null,
      media_state: known.state,
      media_checked_at: known.checkedAt,
      job_id: null,
    };
  }

  return {
    list: allDrives,

    get: driveById,

    async knownMedia(id) {
      const job = (await activeJobsByDevice(jobs)).get(id);
      if (job) return discOfJob(job);
      const known = await knownOf(id);
      if (known.error) throw new UnavailableError(known.error.code, known.error.message, { device: id });
      if (known.media === null || (known.state === 'probing' && !canBeImaged(known.media))) {
        throw new UnavailableError('media_probing', `${id} is being checked for a disc; try again in a moment`, { device: id });
      }
      return known.media;
    },

    async views() {
      const [active, remote] = await Promise.all([activeJobsByDevice(jobs), remoteDrives()]);
      return [
        ...states.list().map((drive) => view(drive, active.get(drive.id) ?? null, states.media(drive.id))),
        ...remote.map(({ drive, known }) => view(drive, active.get(drive.id) ?? null, known)),
      ];
    },

    async eject(device) {
      const drive = await resolveDrive({ list: allDrives, get: driveById }, device);
      if ((await activeJobsByDevice(jobs)).has(drive.id)) {
        throw new ConflictError('device_busy', `${drive.id} is busy: a job is reading from it; pause or cancel the job first`, { device: drive.id });
      }
      if (deps.remote !== undefined && !isLocal(drive.id)) {
        await deps.remote.eject(drive);
        return drive;
      }
      await drives.eject(drive.id);
      states.refresh(drive.id, { forget: true });
      return drive;
    },
  };
}

function mediaFields(media: MediaInfo | null): Pick<DeviceView, 'has_media' | 'media_type' | 'media_size_bytes' | 'media_kind' | 'label'> {
  if (!media) return { has_media: false, media_type: null, media_size_bytes: null, media_kind: null, label: null };
  return {
    has_media: media.present,
    media_type: media.mediaType,
    media_size_bytes: media.imageSizeBytes,
    media_kind: media.present ? media.kind : null,
    label: media.volumeLabel,
  };
}

/**
 * The disc a job reads, as the job service recorded it when the job was made (`options.disc`):
 * a busy drive holds that disc, or the job fails when it notices it does not.
 */
function discOfJob(job: JobRecord): MediaInfo {
  const disc = job.options.disc ?? {};
  return {
    present: true,
    deviceSizeBytes: null,
    imageSizeBytes: disc.size_bytes ?? job.sizeBytes,
    sizeSource: null,
    logicalSectorSize: disc.sector_size ?? 2048,
    fileSystems: disc.file_systems ?? [],
    volumeLabel: disc.label ?? null,
    volumeId: disc.volume_id ?? null,
    createdAt: disc.created_at ?? null,
    kind: disc.kind ?? 'unknown',
    mediaType: disc.media_type ?? null,
  };
}
