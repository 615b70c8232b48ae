import type { FastifyReply, FastifyRequest } from 'fastify';
import { HASH_ALGORITHMS, type HashAlgorithm, PRIORITIES, type Priority, READ_ATTEMPTS } from '../../config/schema.js';
import { DomainError, NotFoundError, ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { isRequeueable } from '../../jobs/model.js';
import type { CreateJobInput } from '../../jobs/service.js';
import type { JobView } from '../../jobs/view.js';
import type { DeviceView } from '../../system/devices.js';
import { userMessage } from '../errors.js';
import { isJobAction, jobActions, movesOnItsOwn } from '../job-card.js';
import { renderFragment, renderPage, requestI18n } from '../render.js';
import { formFields, localPath, withParams } from '../request.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import { readSectorMap } from '../sector-map.js';
import type { I18n, WebDeps } from '../types.js';

interface DriveChoice {
  device: DeviceView;
  /** Why this drive cannot be imaged now (translated), or null when it can. */
  problem: string | null;
}

interface NewJobForm {
  device: string;
  name: string;
  readAttempts: string;
  verify: boolean;
  checksums: string[];
  priority: string;
  eject: boolean;
}

type FieldErrors = Partial<Record<keyof NewJobForm, string>>;

const JOB_ID = /^job_[a-z0-9]{1,64}$/;
/** Refusals of the job service that the form shows next to a field instead of an error page. */
const FORM_ERRORS = new Set([
  'unknown_device',
  'no_media',
  'blank_media',
  'unsupported_media',
  'unknown_size',
  'media_probing',
  'drive_not_responding',
  'probe_backlog',
  'media_unreadable',
  'invalid_name',
  'name_exhausted',
]);

/** Why a drive's last probe failed: the catalog's sentence for its code, else the probe's own message. */
function probeError(i18n: I18n, device: Pick<DeviceView, 'media_error' | 'media_error_code'>): string {
  const key = `errors.${device.media_error_code}`;
  return device.media_error_code !== null && i18n.has(key) ? i18n.t(key) : i18n.t('errors.generic', { message: device.media_error ?? '' });
}

/** Why the job service would refuse the drive's disc now, by the rules of KnownDrives.knownMedia (translated), or null. */
export function mediaProblem(i18n: I18n, device: DeviceView): string | null {
  if (device.media_state === 'job') return null;
  if (device.media_state === 'not_responding') return i18n.t('errors.drive_not_responding');
  if (device.media_error !== null) return probeError(i18n, device);
  const refusal = discProblem(device);
  if (refusal === null) return null;
  // A refusal from an older answer is not trusted: the drive is being checked again.
  return i18n.t(device.media_state === 'probing' ? 'errors.media_probing' : `errors.${refusal}`);
}

function discProblem(device: DeviceView): string | null {
  if (!device.has_media) return 'no_media';
  if (device.media_kind === 'blank') return 'blank_media';
  if (device.media_kind === 'audio') return 'unsupported_media';
  if (!device.media_size_bytes) return 'unknown_size';
  return null;
}

async function driveChoices(deps: WebDeps, i18n: I18n): Promise<DriveChoice[]> {
  return (await deps.devices.views()).map((device) => ({ device, problem: mediaProblem(i18n, device) }));
}

/**
 * The other drives whose disc looks like the job's by the listing (label and size), to offer
 * "continue on drive …" for a job that can be queued again (resume or retry). The runner checks
 * the volume id and size before it reads.
 */
async function drivesWithSameDisc(deps: WebDeps, job: JobView): Promise<DeviceView[]> {
  const size = job.options.disc?.size_bytes;
  const label = job.options.disc?.label ?? null;
  if (!isRequeueable(job.status) || size === undefined) return [];
  return (await deps.devices.views()).filter(
    (device) => device.id !== job.device_id && device.has_media && device.media_size_bytes === size && device.label === label,
  );
}

/** The rule validateImageName broke, as a sentence of the catalog. */
function nameProblem(i18n: I18n, error: DomainError): string {
  const reason = JSON.stringify(error.details ?? '');
  const key = [
    ['empty', 'jobs.new.name_empty'],
    ['control', 'jobs.new.name_control'],
    ['separator', 'jobs.new.name_separator'],
    ['..', 'jobs.new.name_dots'],
    ['start with', 'jobs.new.name_start'],
    ['longer', 'jobs.new.name_long'],
  ].find(([needle]) => reason.includes(needle as string))?.[1];
  return i18n.t(key ?? 'jobs.new.name_invalid');
}

function parseNewJob(source: unknown): NewJobForm {
  const form = formFields(source);
  return {
    device: form.one('device') ?? '',
    name: form.one('name') ?? '',
    readAttempts: form.one('read_attempts') ?? '',
    verify: form.has('verify'),
    checksums: form.all('checksums'),
    priority: form.one('priority') ?? '',
    eject: form.has('eject'),
  };
}

function validateNewJob(i18n: I18n, form: NewJobForm): { input: CreateJobInput | null; errors: FieldErrors } {
  const errors: FieldErrors = {};
  if (form.device === '') errors.device = i18n.t('jobs.new.device_required');
  const readAttempts = /^\d{1,3}$/.test(form.readAttempts) ? Number(form.readAttempts) : NaN;
  const { minimum, maximum } = READ_ATTEMPTS;
  if (!(readAttempts >= minimum && readAttempts <= maximum)) errors.readAttempts = i18n.t('jobs.new.read_attempts_invalid', { min: minimum, max: maximum });
  const checksums = form.checksums.filter((value): value is HashAlgorithm => (HASH_ALGORITHMS as readonly string[]).includes(value));
  if (checksums.length === 0 || checksums.length !== form.checksums.length) errors.checksums = i18n.t('jobs.new.checksums_required');
  if (!(PRIORITIES as readonly string[]).includes(form.priority)) errors.priority = i18n.t('jobs.new.priority_invalid');
  if (Object.keys(errors).length > 0) return { input: null, errors };
  return {
    input: {
      device: form.device,
      ...(form.name === '' ? {} : { name: form.name }),
      options: {
        read_attempts: readAttempts,
        verify: form.verify,
        checksums: [...new Set(checksums)],
        priority: form.priority as Priority,
        eject: form.eject,
      },
    },
    errors,
  };
}

/** Which field a refusal of the job service belongs to. */
function fieldOfError(error: DomainError): keyof NewJobForm {
  if (error.code === 'invalid_name' || error.code === 'name_exhausted') return 'name';
  return 'device';
}

export function registerJobPages(app: App, deps: WebDeps): void {
  const { security, config } = deps;

  const renderNewJob = async (request: FastifyRequest, reply: FastifyReply, form: NewJobForm, errors: FieldErrors, status: number): Promise<FastifyReply> => {
    const i18n = requestI18n(request);
    const drives = await driveChoices(deps, i18n);
    const device = form.device !== '' ? form.device : (drives.find((choice) => choice.problem === null)?.device.id ?? '');
    return renderPage(
      request,
      reply,
      security,
      'job-new',
      {
        title: 'jobs.new.title',
        drives,
        form: { ...form, device },
        errors,
        hashAlgorithms: HASH_ALGORITHMS,
        priorities: PRIORITIES,
      },
      status,
    );
  };

  app.get('/jobs/new', { config: { permission: 'jobs:write' } }, async (request, reply) => {
    const query = formFields(request.query);
    const defaults: NewJobForm = {
      device: query.one('drive') ?? '',
      name: '',
      readAttempts: String(config.imaging.read_attempts),
      verify: config.imaging.verify,
      checksums: [...config.imaging.checksums],
      priority: config.imaging.priority,
      eject: config.storage.delete_source_on_success,
    };
    return renderNewJob(request, reply, defaults, {}, 200);
  });

  app.post('/jobs', { config: { permission: 'jobs:write', audit: { event_type: 'job', action: 'create' } } }, async (request, reply) => {
    const i18n = requestI18n(request);
    const form = parseNewJob(request.body);
    const { input, errors } = validateNewJob(i18n, form);
    if (input === null) return renderNewJob(request, reply, form, errors, 400);
    try {
      const job = await deps.jobs.create(input, security.user(request).name);
      request.auditDetails = { id: job.id };
      // The job's id goes with the notice, so the page can take the notice away once the job has moved on.
      return reply.redirect(withParams('/', { notice: 'job_created', notice_job: job.id }), 303);
    } catch (error) {
      if (!(error instanceof DomainError) || !FORM_ERRORS.has(error.code)) throw error;
      const field = fieldOfError(error);
      const message = field === 'name' && error.code === 'invalid_name' ? nameProblem(i18n, error) : userMessage(i18n, error);
      return renderNewJob(request, reply, form, { [field]: message }, 400);
    }
  });

  const jobData = async (id: string) => {
    const job = await deps.jobs.get(id);
    const [logs, sectorMap, moveTargets] = await Promise.all([deps.jobs.logs(id), readSectorMap(job.output_file), drivesWithSameDisc(deps, job)]);
    return { job, logs, sectorMap, moveTargets, lastLogId: logs.at(-1)?.id ?? 0 };
  };

  app.get<{ Params: { id: string } }>('/jobs/:id', { config: { permission: 'jobs:read' } }, async (request, reply) => {
    const data = await jobData(checkedJobId(request.params.id));
    return renderPage(request, reply, security, 'job-detail', {
      ...data,
      title: 'jobs.detail.title',
      browserNotifications: deps.config.notifications.browser,
      autoRefresh: movesOnItsOwn(data.job),
    });
  });

  /** Progress, fields and sector map of one job, fetched by the detail page's script while the job runs. */
  app.get<{ Params: { id: string } }>('/jobs/:id/live', { config: { permission: 'jobs:read' } }, async (request, reply) => {
    const id = checkedJobId(request.params.id);
    const job = await deps.jobs.get(id);
    const [sectorMap, moveTargets] = await Promise.all([readSectorMap(job.output_file), drivesWithSameDisc(deps, job)]);
    return renderFragment(request, reply, security, 'partials/job-live', { job, sectorMap, moveTargets, here: `/jobs/${id}` });
  });

  /** Log lines after a given one, appended by the detail page's script. */
  app.get<{ Params: { id: string } }>('/jobs/:id/log', { config: { permission: 'jobs:read' } }, async (request, reply) => {
    const id = checkedJobId(request.params.id);
    const after = Number.parseInt(formFields(request.query).one('after') ?? '0', 10);
    const logs = await deps.jobs.logs(id, Number.isSafeInteger(after) && after > 0 ? after : undefined);
    return renderFragment(request, reply, security, 'partials/log-lines', { logs });
  });

  app.post<{ Params: { id: string } }>('/jobs/:id/action', { config: { permission: 'jobs:write' } }, async (request, reply) => {
    const id = checkedJobId(request.params.id);
    const returnTo = returnPath(request, `/jobs/${id}`);
    const form = formFields(request.body);
    const action = form.one('action');
    const device = form.one('device');
    try {
      // Cancel goes through /jobs/:id/cancel, which asks what to do with the data read so far.
      if (!isJobAction(action) || action === 'cancel') throw new ValidationError('invalid_action', 'unknown action', [{ field: 'action' }]);
      await deps.jobs.update(id, { action, ...(device === undefined ? {} : { device }) });
      return actionDone(request, reply, `job_${action}`, returnTo, action === 'pause' ? `job:${id}:paused` : undefined);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });

  /** Cancel asks first, saying how much was read; the form (also the JS dialog's content) keeps the data by default. */
  app.get<{ Params: { id: string } }>('/jobs/:id/cancel', { config: { permission: 'jobs:write' } }, async (request, reply) => {
    const id = checkedJobId(request.params.id);
    const job = await deps.jobs.get(id);
    const returnTo = localPath(formFields(request.query).one('return_to'), `/jobs/${id}`);
    if (!jobActions(job.status).includes('cancel')) return reply.redirect(withParams(returnTo, { error: 'invalid_state' }), 303);
    return renderPage(request, reply, security, 'job-cancel', {
      title: 'jobs.cancel.title',
      job,
      returnTo,
      keepDefault: job.bytes_done > 0 || config.storage.keep_partial_on_cancel,
      keepOnly: job.archive_id !== null,
    });
  });

  app.post<{ Params: { id: string } }>('/jobs/:id/cancel', { config: { permission: 'jobs:write' } }, async (request, reply) => {
    const id = checkedJobId(request.params.id);
    const returnTo = returnPath(request, `/jobs/${id}`);
    const partial = formFields(request.body).one('partial');
    try {
      if (partial !== 'keep' && partial !== 'discard')
        throw new ValidationError('invalid_action', 'choose whether to keep the partial image', [{ field: 'partial' }]);
      await deps.jobs.update(id, { action: 'cancel', keep_partial: partial === 'keep' });
      return actionDone(request, reply, partial === 'keep' ? 'job_cancel_kept' : 'job_cancel', returnTo, `job:${id}:cancelled`);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });

  app.post<{ Params: { id: string } }>('/jobs/:id/retry-bad-areas', { config: { permission: 'jobs:write' } }, async (request, reply) => {
    const id = checkedJobId(request.params.id);
    const returnTo = returnPath(request, `/jobs/${id}`);
    try {
      await deps.jobs.retryBadAreas(id);
      return actionDone(request, reply, 'job_retry_bad_areas', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });

  app.post<{ Params: { id: string } }>('/jobs/:id/priority', { config: { permission: 'jobs:write' } }, async (request, reply) => {
    const id = checkedJobId(request.params.id);
    const returnTo = returnPath(request, `/jobs/${id}`);
    const priority = formFields(request.body).one('priority');
    try {
      if (!(PRIORITIES as readonly (string | undefined)[]).includes(priority))
        throw new ValidationError('invalid_priority', 'unknown priority', [{ field: 'priority' }]);
      await deps.jobs.update(id, { priority: priority as Priority });
      return actionDone(request, reply, 'job_priority', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });
}

/** Ids are checked before any lookup, so a path-like id never reaches a service. */
function checkedJobId(id: string): string {
  if (!JOB_ID.test(id)) throw new NotFoundError('job_not_found', `no job ${id}`);
  return id;
}
