import Type from 'typebox';
import type { DeviceStatusService } from '../../system/devices.js';
import type { App } from '../app.js';
import { DeviceId, DiscKind, MediaType, Nullable, errors } from '../schemas.js';

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
    media_kind: Nullable(DiscKind),
    label: Nullable(Type.String()),
    ejectable: Type.Boolean(),
    media_error: Nullable(Type.String({ description: 'Why the medium could not be read, when it could not' })),
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
          description: 'Optical drives, the block devices and image files an administrator allowed (drives.extra), and the demo drive.',
          response: { 200: Type.Object({ devices: Type.Array(Device) }, { additionalProperties: false }) },
        },
      },
      async () => ({ devices: await devices.list() }),
    );

    app.post(
      '/api/v1/devices/:device/eject',
      {
        config: { permission: 'devices:write' },
        schema: {
          tags: ['devices'],
          summary: 'Open the tray of a drive',
          params: Type.Object({ device: DeviceId }, { additionalProperties: false }),
          response: {
            200: Type.Object({ id: DeviceId, ejected: Type.Boolean() }, { additionalProperties: false }),
            ...errors(400, 404, 409),
          },
        },
      },
      async (request) => {
        await devices.eject(request.params.device);
        return { id: request.params.device, ejected: true };
      },
    );
  };
}
