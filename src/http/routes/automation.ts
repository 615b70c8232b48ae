import Type from 'typebox';
import type { AutomationService } from '../../jobs/automation.js';
import { type DriveAutomation, DriveAutomationSchema } from '../../jobs/automation-model.js';
import { resolveDrive } from '../../jobs/intake.js';
import type { KnownDrives } from '../../system/devices.js';
import type { App } from '../app.js';
import { principalOf } from '../guard.js';
import { DeviceId, DeviceRef, Nullable, errors } from '../schemas.js';

const AutomationView = Type.Object(
  {
    ...DriveAutomationSchema.properties,
    device: DeviceId,
    counter: Type.Integer({ minimum: 0, description: 'How many images {counter} has numbered for this drive' }),
    updated_at: Nullable(Type.String({ format: 'date-time', description: 'null while the drive has the defaults (manual)' })),
    updated_by: Nullable(Type.String()),
  },
  { additionalProperties: false },
);

export function automationRoutes(automation: AutomationService, devices: KnownDrives) {
  const view = (record: Awaited<ReturnType<AutomationService['settings']>>) => {
    const { deviceId, counter, updatedAt, updatedBy, ...settings } = record;
    return { ...settings, device: deviceId, counter, updated_at: updatedAt, updated_by: updatedBy };
  };
  const params = Type.Object({ device: DeviceRef }, { additionalProperties: false });

  return (app: App): void => {
    app.get(
      '/api/v1/devices/:device/automation',
      {
        config: { permission: 'system:read' },
        schema: {
          tags: ['devices'],
          summary: 'What the drive does with a disc put into it',
          params,
          response: { 200: AutomationView, ...errors(400, 404) },
        },
      },
      async (request) => view(await automation.settings((await resolveDrive(devices, request.params.device)).id)),
    );

    app.put(
      '/api/v1/devices/:device/automation',
      {
        config: { permission: 'system:write', audit: { event_type: 'config', action: 'change' } },
        schema: {
          tags: ['devices'],
          summary: 'Set what the drive does with a disc put into it',
          description:
            'manual: nothing; notify: a `disc.notice` event and a notice with "Image this disc" on the dashboard; automatic: a job is queued at once with this profile. ' +
            'The name template takes {label}, {date} and {counter}; the name it makes is checked like any image name when the job is created. ' +
            'A disc whose volume id, size and creation date match an archived image is handled as `duplicates` says (automatic mode).',
          params,
          body: DriveAutomationSchema,
          response: { 200: AutomationView, ...errors(400, 404, 413, 415) },
        },
      },
      async (request) => {
        const drive = await resolveDrive(devices, request.params.device);
        return view(await automation.update(drive.id, request.body as DriveAutomation, principalOf(request).name));
      },
    );
  };
}
