import Type, { type TSchema } from 'typebox';
import { ARCHIVE_CONDITIONS, ARCHIVE_STATUSES, VERIFICATION_ORIGINS } from '../archive/model.js';
import { VERIFICATION_TASK_STATUSES } from '../archive/verification-task.js';
import { HASH_ALGORITHMS, PRIORITIES } from '../config/schema.js';
import { DISC_KINDS, MEDIA_TYPES } from '../drives/types.js';
import { JOB_STATUSES, JobOptionsSchema } from '../jobs/model.js';
import { LOG_LEVELS } from '../log.js';

/**
 * Schemas shared by several routes. Every object is closed (additionalProperties false): requests
 * with unknown fields are refused, responses never leak a field the contract does not name.
 */

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const Timestamp = Type.String({ format: 'date-time', description: 'ISO 8601 UTC' });

/** Ids are matched before any lookup, so a path-like or oversized id never reaches a service. */
export const JobId = Type.String({ pattern: '^job_[a-z0-9]{1,64}$', description: 'Job id, e.g. job_3f9c…' });
export const ArchiveId = Type.String({ pattern: '^archive_[a-z0-9]{1,64}$', description: 'Archive id, e.g. archive_3f9c…' });
export const VerificationTaskId = Type.String({ pattern: '^verify_[a-z0-9]{1,64}$', description: 'Verification task id, e.g. verify_3f9c…' });
export const DeviceId = Type.String({
  pattern: '^(?:[a-z0-9][a-z0-9-]{0,62}\\.)?[a-z][a-z0-9-]{0,63}$',
  description: 'Drive id from GET /api/v1/devices (sr0, loop3, demo, …; in the cluster mode the node’s name first: tower-a.sr0)',
});
/** How a request names a drive: its id, or the device path of a listed drive (URL-encoded in a path: %2Fdev%2Fsr0). */
export const DeviceRef = Type.String({ minLength: 1, maxLength: 4096, description: 'Drive id (sr0) or the device path of a listed drive (/dev/sr0)' });

export const ErrorResponse = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.String({ description: 'Stable machine-readable code, e.g. job_not_found' }),
        message: Type.String({ description: 'What went wrong, for people' }),
        details: Type.Optional(Type.Unknown()),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: 'Every error has this shape' },
);

/** The error responses a route can give, all with the one error shape. */
export function errors(...statuses: number[]): Record<number, typeof ErrorResponse> {
  return Object.fromEntries(statuses.map((status) => [status, ErrorResponse]));
}

export const SortOrder = Type.Enum(['asc', 'desc']);
export const Limit = (defaultValue: number, maximum: number) => Type.Integer({ minimum: 1, maximum, default: defaultValue });
export const Offset = Type.Integer({ minimum: 0, maximum: 1_000_000_000, default: 0 });

export const JobStatus = Type.Enum([...JOB_STATUSES]);
export const Priority = Type.Enum([...PRIORITIES]);
export const HashAlgorithm = Type.Enum([...HASH_ALGORITHMS]);
export const ArchiveStatus = Type.Enum([...ARCHIVE_STATUSES]);
export const LogLevel = Type.Enum([...LOG_LEVELS]);
export const DiscKind = Type.Enum([...DISC_KINDS]);
export const MediaType = Type.Enum([...MEDIA_TYPES]);
export const ImagingPhase = Type.Enum(['preparing', 'copying', 'trimming', 'scraping', 'retrying', 'hashing', 'finalizing', 'verifying']);

const Checksums = Type.Object(
  { md5: Type.Optional(Type.String()), sha1: Type.Optional(Type.String()), sha256: Type.Optional(Type.String()) },
  { additionalProperties: false },
);

export const Job = Type.Object(
  {
    id: JobId,
    name: Type.String(),
    status: JobStatus,
    progress: Type.Number({ minimum: 0, maximum: 100, description: 'Percent done' }),
    created_at: Timestamp,
    updated_at: Timestamp,
    device: Type.String({ description: 'Device path' }),
    output_file: Type.String(),
    size_bytes: Nullable(Type.Integer()),
    speed_bps: Nullable(Type.Integer()),
    eta_seconds: Nullable(Type.Integer()),
    device_id: DeviceId,
    node: Nullable(Type.String({ description: 'The cluster node whose drive the job reads (GET /api/v1/system/nodes); null in the embedded mode' })),
    node_online: Nullable(
      Type.Boolean({
        description:
          'Whether that node’s heartbeat is fresh (cluster.offline_after_seconds): false means a running job there is not advancing until the node is back; null in the embedded mode',
      }),
    ),
    priority: Priority,
    queue_position: Nullable(Type.Integer({ minimum: 1, description: '1-based place among queued jobs (null unless queued)' })),
    phase: Nullable(ImagingPhase),
    bytes_done: Type.Integer(),
    bad_bytes: Type.Integer(),
    error_count: Type.Integer(),
    error: Nullable(Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false })),
    pause_reason: Nullable(
      Type.Enum(['requested', 'disk_full'], {
        description: 'Why a paused job waits (null unless paused): someone asked, or the output storage is too full (error says how); resume continues either',
      }),
    ),
    options: JobOptionsSchema,
    started_at: Nullable(Timestamp),
    finished_at: Nullable(Timestamp),
    archive_id: Nullable(ArchiveId),
    attempts: Type.Integer({ description: 'How often a worker took the job up' }),
    created_by: Nullable(
      Type.String({ description: 'Who made the job: the user (a key’s owner for a key), or cli:ACCOUNT for `disk2iso create` run by that unix account' }),
    ),
    outcome: Nullable(
      Type.Enum(['clean', 'with_errors'], {
        description:
          'For a completed job: clean, or with_errors ("completed with errors") when unreadable sectors are zero-filled in the image; null otherwise',
      }),
    ),
    bad_sectors: Nullable(
      Type.Object(
        {
          sectors: Type.Integer({ description: 'Unreadable sectors' }),
          bytes: Type.Integer({ description: 'Unreadable bytes' }),
          zero_filled: Type.Literal(true, { description: 'Unreadable sectors read as zeros in the image' }),
          map_url: Type.String({ description: 'The rescue map listing the bad areas (GNU ddrescue mapfile)' }),
        },
        { additionalProperties: false, description: 'null while no sector is known to be unreadable' },
      ),
    ),
  },
  { additionalProperties: false },
);

/** The live payload of a job_update message (the specification's status, progress, speed_bps, eta_seconds, and more). */
export const JobUpdate = Type.Object(
  {
    status: JobStatus,
    progress: Type.Number(),
    speed_bps: Nullable(Type.Integer()),
    eta_seconds: Nullable(Type.Integer()),
    phase: Nullable(ImagingPhase),
    bytes_done: Type.Integer(),
    size_bytes: Nullable(Type.Integer()),
    bad_bytes: Type.Integer(),
    error_count: Type.Integer(),
    updated_at: Type.String({ format: 'date-time', description: 'ISO 8601 UTC: when the job was in this state' }),
    node_online: Nullable(
      Type.Boolean({
        description: 'As the job’s node_online: false once its node is offline (an update is sent when that changes); null in the embedded mode',
      }),
    ),
  },
  { additionalProperties: false },
);

const VerificationOrigin = Type.Enum([...VERIFICATION_ORIGINS], {
  description: 'What started it: imaging (the check after a disc was read), manual (a user), schedule (the re-verification schedule), repair, adoption',
});

const ArchiveRecovery = Type.Object(
  {
    redundancy_percent: Type.Integer({ description: 'Share of the image the PAR2 recovery blocks can restore' }),
    created_at: Timestamp,
    size_bytes: Type.Integer({ description: 'Size of the PAR2 files' }),
  },
  { additionalProperties: false, description: 'PAR2 recovery data kept beside the image' },
);

export const Archive = Type.Object(
  {
    id: ArchiveId,
    filename: Type.String(),
    path: Type.String(),
    size_bytes: Type.Integer(),
    created_at: Timestamp,
    checksums: Checksums,
    metadata: Type.Object(
      {
        label: Type.String(),
        tags: Type.Array(Type.String()),
        notes: Type.String(),
        category_id: Nullable(Type.String({ description: 'An entry of /api/v1/archive-categories' })),
        rating: Nullable(Type.Integer({ minimum: 1, maximum: 5 })),
        custom_fields: Type.Record(Type.String(), Type.String()),
      },
      { additionalProperties: false },
    ),
    source: Type.Object(
      {
        device_id: Nullable(Type.String()),
        device_path: Nullable(Type.String()),
        disc_kind: Nullable(DiscKind),
        volume_label: Nullable(Type.String()),
        volume_id: Nullable(Type.String()),
        media_type: Nullable(MediaType),
        file_systems: Type.Array(Type.String()),
      },
      { additionalProperties: false },
    ),
    disc_kind: Nullable(DiscKind),
    status: ArchiveStatus,
    condition: Type.Enum([...ARCHIVE_CONDITIONS], {
      description: 'What the badge says: completed_with_errors (zero-filled unreadable sectors), damaged (failed verification), unverified (never verified)',
    }),
    bad_bytes: Type.Integer(),
    last_verified_at: Nullable(Timestamp),
    last_verified_ok: Nullable(Type.Boolean()),
    job_id: Nullable(JobId),
    duplicates: Type.Optional(Type.Array(ArchiveId, { description: 'Other archives with the same SHA-256 (identical images)' })),
    recovery: Nullable(ArchiveRecovery),
  },
  { additionalProperties: false },
);

export const Verification = Type.Object(
  {
    id: Type.Integer(),
    archive_id: ArchiveId,
    started_at: Timestamp,
    finished_at: Timestamp,
    ok: Type.Boolean(),
    seconds: Type.Number(),
    requested_by: Nullable(Type.String()),
    origin: VerificationOrigin,
    results: Type.Record(Type.String(), Type.Unknown(), { description: 'Per-algorithm outcome and what else the verifier reported' }),
  },
  { additionalProperties: false },
);

/** A background re-hash of one image; also the data of the live `archive_verification_update` message. */
export const VerificationTask = Type.Object(
  {
    id: VerificationTaskId,
    archive_id: ArchiveId,
    status: Type.Enum([...VERIFICATION_TASK_STATUSES]),
    progress: Type.Number({ minimum: 0, maximum: 100, description: 'Percent of the image re-hashed' }),
    bytes_done: Type.Integer(),
    bytes_total: Type.Integer({ description: 'The image size' }),
    speed_bps: Nullable(Type.Integer()),
    eta_seconds: Nullable(Type.Integer()),
    requested_by: Nullable(Type.String({ description: 'Who asked: the user (a key’s owner for a key)' })),
    origin: VerificationOrigin,
    cancel_requested: Type.Boolean({ description: 'A cancel was asked for while it runs; it stops within moments' }),
    attempts: Type.Integer({ description: 'How often a worker started it (a restart starts it again from the beginning)' }),
    error: Nullable(Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false, description: 'Why it failed' })),
    verification_id: Nullable(Type.Integer({ description: 'The entry it added to the verification history (completed only)' })),
    ok: Nullable(Type.Boolean({ description: 'Whether the image matched its checksums (completed only)' })),
    created_at: Timestamp,
    updated_at: Timestamp,
    started_at: Nullable(Timestamp),
    finished_at: Nullable(Timestamp),
  },
  { additionalProperties: false },
);

/** One line of a job's own log. */
export const JobLogLine = Type.Object({ id: Type.Integer(), at: Timestamp, level: LogLevel, message: Type.String() }, { additionalProperties: false });
