import type { FastifyReply, FastifyRequest } from 'fastify';
import { HASH_ALGORITHMS, type HashAlgorithm, READ_ATTEMPTS } from '../../config/schema.js';
import { DEVICE_ID_PATTERN } from '../../drives/service.js';
import { type DomainError, NotFoundError, ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { AUTOMATION_MODES, DUPLICATE_POLICIES, type DriveAutomation } from '../../jobs/automation-model.js';
import { ACTIVE_JOB_STATUSES } from '../../jobs/model.js';
import { userMessage } from '../errors.js';
import { renderPage, requestI18n } from '../render.js';
import { formFields, wantsJson } from '../request.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import type { I18n, WebDeps } from '../types.js';
import { mediaProblem } from './jobs.js';

/** The automation form's fields that can be refused, as the template names their messages. */
type AutomationField = 'mode' | 'name_template' | 'read_attempts' | 'checksums' | 'verify' | 'duplicates';
type AutomationErrors = Partial<Record<AutomationField, string>>;

/** A refused automation form: the drive, what was submitted (shown again) and a message per field. */
interface RefusedAutomation {
  driveId: string;
  shown: DriveAutomation;
  readAttempts: string;
  errors: AutomationErrors;
}

/**
 * The drive's automation form as the API's body: empty read attempts, no checksum ticked and verify
 * "as in the settings" mean the settings. Every field the form cannot have sent is named, at once.
 */
function parseAutomationForm(i18n: I18n, body: unknown): { automation: DriveAutomation; readAttempts: string; errors: AutomationErrors } {
  const form = formFields(body);
  const errors: AutomationErrors = {};
  const oneOf = <T extends string>(field: AutomationField, values: readonly T[], fallback: T): T => {
    const value = form.one(field) ?? '';
    if ((values as readonly string[]).includes(value)) return value as T;
    errors[field] = i18n.t('config.errors.choose_one');
    return fallback;
  };
  const attempts = form.one('read_attempts') ?? '';
  let readAttempts: number | null = null;
  if (attempts !== '') {
    const number = /^\d{1,3}$/.test(attempts) ? Number(attempts) : Number.NaN;
    if (number >= READ_ATTEMPTS.minimum && number <= READ_ATTEMPTS.maximum) readAttempts = number;
    else errors.read_attempts = i18n.t('config.errors.range', { min: READ_ATTEMPTS.minimum, max: READ_ATTEMPTS.maximum });
  }
  const checksums = form.all('checksums').filter((value): value is HashAlgorithm => (HASH_ALGORITHMS as readonly string[]).includes(value));
  if (checksums.length !== form.all('checksums').length) errors.checksums = i18n.t('config.errors.choose_one');
  const verify = oneOf('verify', ['setting', 'yes', 'no'] as const, 'setting');
  const automation: DriveAutomation = {
    mode: oneOf('mode', AUTOMATION_MODES, 'manual'),
    name_template: form.one('name_template') ?? '',
    read_attempts: readAttempts,
    checksums: checksums.length === 0 ? null : [...new Set(checksums)],
    verify: verify === 'setting' ? null : verify === 'yes',
    eject: form.has('eject'),
    duplicates: oneOf('duplicates', DUPLICATE_POLICIES, DUPLICATE_POLICIES[0]),
  };
  return { automation, readAttempts: attempts, errors };
}

const AUTOMATION_FIELDS: readonly AutomationField[] = ['mode', 'name_template', 'read_attempts', 'checksums', 'verify', 'duplicates'];

/** The field a refusal of the automation service names (its details' `field`), or the name template, the one free-text field. */
function refusedField(error: DomainError): AutomationField {
  const details = Array.isArray(error.details) ? error.details : error.details === undefined ? [] : [error.details];
  const named = details
    .map((entry) => entry['field'])
    .find((field): field is AutomationField => typeof field === 'string' && AUTOMATION_FIELDS.includes(field as AutomationField));
  return named ?? 'name_template';
}

export function registerDrivePages(app: App, deps: WebDeps): void {
  const { security } = deps;

  const renderDrives = async (request: FastifyRequest, reply: FastifyReply, refused: RefusedAutomation | null, status: number) => {
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
        automation: !showAutomation ? null : refused?.driveId === device.id ? refused.shown : await deps.automation.settings(device.id),
        readAttempts: refused?.driveId === device.id ? refused.readAttempts : null,
        errors: refused?.driveId === device.id ? refused.errors : {},
      })),
    );
    return renderPage(
      request,
      reply,
      security,
      'drives',
      {
        title: 'drives.title',
        rows,
        algorithms: HASH_ALGORITHMS,
        modes: AUTOMATION_MODES,
        duplicatePolicies: DUPLICATE_POLICIES,
        readAttempts: READ_ATTEMPTS,
        autoRefresh: rows.some((row) => row.job !== null),
      },
      status,
    );
  };

  app.get('/drives', { config: { permission: 'devices:read' } }, async (request, reply) => renderDrives(request, reply, null, 200));

  app.post<{ Params: { id: string } }>(
    '/drives/:id/automation',
    { config: { permission: 'system:write', audit: { event_type: 'config', action: 'change' } } },
    async (request, reply) => {
      const returnTo = '/drives';
      const i18n = requestI18n(request);
      try {
        const drive = await deps.devices.get(request.params.id);
        const { automation, readAttempts, errors } = parseAutomationForm(i18n, request.body);
        const refuse = (fieldErrors: AutomationErrors) => {
          request.auditDetails = null;
          if (wantsJson(request)) throw new ValidationError('invalid_body', Object.values(fieldErrors).join(' '), [fieldErrors]);
          return renderDrives(request, reply, { driveId: drive.id, shown: automation, readAttempts, errors: fieldErrors }, 400);
        };
        if (Object.keys(errors).length > 0) return await refuse(errors);
        try {
          const stored = await deps.automation.update(drive.id, automation, security.user(request).name);
          request.auditDetails = { device: drive.id, changed: ['automation'], mode: stored.mode };
        } catch (error) {
          if (!(error instanceof ValidationError)) throw error;
          return await refuse({ [refusedField(error)]: userMessage(i18n, error) });
        }
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
      if (!DEVICE_ID_PATTERN.test(id)) throw new NotFoundError('unknown_device', `no drive ${id}`);
      await deps.devices.eject(id);
      return actionDone(request, reply, 'drive_ejected', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });
}
