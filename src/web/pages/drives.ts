import { DRIVE_ID_PATTERN } from '../../drives/service.js';
import { NotFoundError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { ACTIVE_JOB_STATUSES } from '../../jobs/model.js';
import { renderPage, requestI18n } from '../render.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import type { WebDeps } from '../types.js';
import { mediaProblem } from './jobs.js';

export function registerDrivePages(app: App, deps: WebDeps): void {
  const { security } = deps;

  app.get('/drives', { config: { permission: 'devices:read' } }, async (request, reply) => {
    const [devices, active] = await Promise.all([
      deps.devices.views(),
      deps.jobs.list({ status: [...ACTIVE_JOB_STATUSES], limit: 500, offset: 0, sort: 'created' }),
    ]);
    const i18n = requestI18n(request);
    // A drive offers "Image this disc" only for a disc that can be imaged: not blank, not unreadable.
    const rows = devices.map((device) => ({
      device,
      problem: mediaProblem(i18n, device),
      job: active.jobs.find((job) => job.device_id === device.id) ?? null,
    }));
    return renderPage(request, reply, security, 'drives', { title: 'drives.title', rows });
  });

  app.post<{ Params: { id: string } }>('/drives/:id/eject', { config: { permission: 'devices:write' } }, async (request, reply) => {
    const returnTo = returnPath(request, '/drives');
    try {
      const id = request.params.id;
      if (!DRIVE_ID_PATTERN.test(id)) throw new NotFoundError('unknown_device', `no drive ${id}`);
      await deps.devices.eject(id);
      return actionDone(request, reply, 'drive_ejected', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });
}
