import Type from 'typebox';
import type { DeviceStatusService } from '../../system/devices.js';
import type { App } from '../app.js';
import { DeviceId, DeviceRef, DiscKind, JobId, MediaType, Nullable, errors } from '../schemas.js';

const Device = Type.Object(
  {
    path: Type.String(),
    vendor: Nullable(Type.String()),
    model: Nullable(Type.String()),
    status: Type.Enum(['idle', 'busy'], { description: 'busy while a job reads from the drive' }),
    has_media: Type.Boolean(),
    media_type: Nullable(MediaType),
    media_size_bytes: Nullable(Type.Integer({ description: 'Size of the image the disc gives (from its volume descriptors)' })),
    id: DeviceId,
    kind: Type.Enum(['optical', 'block', 'file', 'demo']),
    description: Type.String(),
    backing_file: Nullable(Type.String({ description: 'The file behind a loop device; null for other drives' })),
    node: Nullable(Type.String({ description: 'The cluster node that owns the drive (GET /api/v1/system/nodes); null in the embedded mode' })),
    media_kind: Nullable(DiscKind),
    label: Nullable(Type.String()),
    ejectable: Type.Boolean(),
    media_error: Nullable(Type.String({ description: 'Why the medium could not be read, or why the drive gives no answer' })),
    media_error_code: Nullable(Type.String({ description: 'The error code of media_error (drive_not_responding, media_unreadable, …)' })),
    media_state: Type.Enum(['job', 'probed', 'failed', 'probing', 'not_responding'], {
      description:
        'Where the media fields come from. job: the drive is busy and they are what its job recorded; probed: a probe of the idle drive in the last 15 s; ' +
        'failed: that probe could not read the medium (media_error); probing: the drive is being checked, the fields are the last answer if any; ' +
        'not_responding: the last probe got no answer in time (media_error), the fields are the last answer if any',
    }),
    media_checked_at: Nullable(
      Type.String({
        format: 'date-time',
        description: 'When the media fields were read from the drive (ISO 8601 UTC); null while busy and before the first answer',
      }),
    ),
    job_id: Nullable(JobId),
  },
  { additionalProperties: false },
);

export function deviceRoutes(devices: DeviceStatusService) {
  return (app: App): void => {
    app.get(
      '/api/v1/devices',
      {
        config: { permission: 'devices:read' },
        schema: {
          tags: ['devices'],
          summary: 'List drives and what is in them',
          description:
            'Optical drives, the block devices and image files an administrator allowed (drives.extra), and the demo drive. ' +
            'Answered from memory, never by reading a drive: the service checks idle drives in the background every few seconds while someone looks at them.',
          response: { 200: Type.Object({ devices: Type.Array(Device) }, { additionalProperties: false }) },
        },
      },
      async () => ({ devices: await devices.views() }),
    );

    app.post(
      '/api/v1/devices/:device/eject',
      {
        config: { permission: 'devices:write' },
        schema: {
          tags: ['devices'],
          summary: 'Open the tray of a drive',
          params: Type.Object({ device: DeviceRef }, { additionalProperties: false }),
          response: {
            200: Type.Object({ id: DeviceId, ejected: Type.Boolean() }, { additionalProperties: false }),
            ...errors(400, 404, 409),
          },
        },
      },
      async (request) => {
        const drive = await devices.eject(request.params.device);
        return { id: drive.id, ejected: true };
      },
    );
  };
}
