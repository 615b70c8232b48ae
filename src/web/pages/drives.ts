import { HASH_ALGORITHMS, type HashAlgorithm, READ_ATTEMPTS } from '../../config/schema.js';
import { DRIVE_ID_PATTERN } from '../../drives/service.js';
import { NotFoundError, ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { AUTOMATION_MODES, DUPLICATE_POLICIES, type DriveAutomation } from '../../jobs/automation-model.js';
import { ACTIVE_JOB_STATUSES } from '../../jobs/model.js';
import { renderPage, requestI18n } from '../render.js';
import { formFields } from '../request.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import type { WebDeps } from '../types.js';
import { mediaProblem } from './jobs.js';

/**
 * The drive's automation form as the API's body: empty read attempts, no checksum ticked and verify
 * "as in the settings" mean the settings. Anything the form cannot have sent is refused.
 */
function parseAutomationForm(body: unknown): DriveAutomation {
  const form = formFields(body);
  const invalid = (field: string): never => {
    throw new ValidationError('invalid_body', `invalid ${field}`, [{ field, reason: 'not one of the offered values' }]);
  };
  const oneOf = <T extends string>(field: string, values: readonly T[]): T => {
    const value = form.one(field) ?? '';
    return (values as readonly string[]).includes(value) ? (value as T) : invalid(field);
  };
  const attempts = form.one('read_attempts') ?? '';
  let readAttempts: number | null = null;
  if (attempts !== '') {
    readAttempts = /^\d{1,3}$/.test(attempts) ? Number(attempts) : Number.NaN;
    if (!(readAttempts >= READ_ATTEMPTS.minimum && readAttempts <= READ_ATTEMPTS.maximum)) invalid('read_attempts');
  }
  const checksums = form.all('checksums');
  if (checksums.some((value) => !(HASH_ALGORITHMS as readonly string[]).includes(value))) invalid('checksums');
  const verify = oneOf('verify', ['setting', 'yes', 'no'] as const);
  return {
    mode: oneOf('mode', AUTOMATION_MODES),
    name_template: form.one('name_template') ?? '',
    read_attempts: readAttempts,
    checksums: checksums.length === 0 ? null : ([...new Set(checksums)] as HashAlgorithm[]),
    verify: verify === 'setting' ? null : verify === 'yes',
    eject: form.has('eject'),
    duplicates: oneOf('duplicates', DUPLICATE_POLICIES),
  };
}

export function registerDrivePages(app: App, deps: WebDeps): void {
  const { security } = deps;

  app.get('/drives', { config: { permission: 'devices:read' } }, async (request, reply) => {
    const [devices, active] = await Promise.all([
      deps.devices.views(),
      deps.jobs.list({ status: [...ACTIVE_JOB_STATUSES], limit: 500, offset: 0, sort: 'created' }),
    ]);
    const i18n = requestI18n(request);
    const showAutomation = security.user(request).can('system:read');
    // A drive offers "Image this disc" only for a disc that can be imaged: not blank, not unreadable.
    const rows = await Promise.all(
      devices.map(async (device) => ({
        device,
        problem: mediaProblem(i18n, device),
        job: active.jobs.find((job) => job.device_id === device.id) ?? null,
        automation: showAutomation ? await deps.automation.settings(device.id) : null,
      })),
    );
    return renderPage(request, reply, security, 'drives', {
      title: 'drives.title',
      rows,
      algorithms: HASH_ALGORITHMS,
      modes: AUTOMATION_MODES,
      duplicatePolicies: DUPLICATE_POLICIES,
      readAttempts: READ_ATTEMPTS,
      autoRefresh: rows.some((row) => row.job !== null),
    });
  });

  app.post<{ Params: { id: string } }>(
    '/drives/:id/automation',
    { config: { permission: 'system:write', audit: { event_type: 'config', action: 'change' } } },
    async (request, reply) => {
      const returnTo = '/drives';
      try {
        const drive = await deps.devices.get(request.params.id);
        const stored = await deps.automation.update(drive.id, parseAutomationForm(request.body), security.user(request).name);
        request.auditDetails = { device: drive.id, changed: ['automation'], mode: stored.mode };
        return actionDone(request, reply, 'automation_saved', returnTo);
      } catch (error) {
        request.auditDetails = null;
        return actionFailed(request, reply, error, returnTo);
      }
    },
  );

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
