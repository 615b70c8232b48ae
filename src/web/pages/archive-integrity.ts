import { REDUNDANCY } from '../../archive/recovery.js';
import { NotFoundError, ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { renderPage } from '../render.js';
import { formFields } from '../request.js';
import { actionDone, actionFailed } from '../respond.js';
import type { WebDeps } from '../types.js';

const ARCHIVE_ID = /^archive_[a-z0-9]{1,64}$/;

function checkedArchiveId(id: string): string {
  if (!ARCHIVE_ID.test(id)) throw new NotFoundError('archive_not_found', `no archive ${id}`);
  return id;
}

/**
 * Recovery data and repair of one image, and adopting a folder of images: each long or rewriting
 * action is asked for on a page of its own first, then runs in the background as a task.
 */
export function registerArchiveIntegrityPages(app: App, deps: WebDeps, integrity: WebDeps['integrity']): void {
  const { security, archives } = deps;

  app.get<{ Params: { id: string }; Querystring: { action?: string } }>(
    '/archive/:id/recovery',
    { config: { permission: 'archives:write' } },
    async (request, reply) => {
      const archive = await archives.get(checkedArchiveId(request.params.id));
      const repair = request.query.action === 'repair';
      return renderPage(request, reply, security, 'archive-recovery', {
        title: repair ? 'archive.recovery.repair_title' : 'archive.recovery.create_title',
        archive,
        repair,
        redundancy: integrity.defaultRedundancy(),
        bounds: REDUNDANCY,
      });
    },
  );

  app.post<{ Params: { id: string } }>(
    '/archive/:id/recovery',
    { config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'create_recovery' } } },
    async (request, reply) => {
      const id = checkedArchiveId(request.params.id);
      const returnTo = `/archive/${id}`;
      try {
        const raw = formFields(request.body).one('redundancy_percent') ?? '';
        if (!/^\d{1,3}$/.test(raw)) throw new ValidationError('validation_failed', 'give the redundancy as a whole percent');
        await integrity.recovery.create(id, Number(raw), security.user(request).name);
        return actionDone(request, reply, 'archive_recovery_started', returnTo);
      } catch (error) {
        return actionFailed(request, reply, error, returnTo);
      }
    },
  );

  app.post<{ Params: { id: string } }>(
    '/archive/:id/repair',
    { config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'repair' } } },
    async (request, reply) => {
      const id = checkedArchiveId(request.params.id);
      const returnTo = `/archive/${id}`;
      try {
        await integrity.recovery.repair(id, security.user(request).name);
        return actionDone(request, reply, 'archive_repair_started', returnTo);
      } catch (error) {
        return actionFailed(request, reply, error, returnTo);
      }
    },
  );

  app.get('/archive/adopt', { config: { permission: 'system:write' } }, async (request, reply) =>
    renderPage(request, reply, security, 'archive-adopt', {
      title: 'archive.adopt.title',
      outputDir: deps.config.storage.output_dir,
      roots: deps.config.archive.adopt_roots,
      // What was started here (and recovery work) runs in the background: its progress and outcome are listed below the form.
      tasks: (await integrity.recovery.tasks({ limit: 20, offset: 0 })).tasks,
    }),
  );

  app.post('/archive/adopt', { config: { permission: 'system:write', audit: { event_type: 'archive', action: 'adopt' } } }, async (request, reply) => {
    try {
      await integrity.adoption.start(formFields(request.body).one('folder') ?? '', security.user(request).name);
      return actionDone(request, reply, 'archive_adopt_started', '/archive/adopt');
    } catch (error) {
      return actionFailed(request, reply, error, '/archive/adopt');
    }
  });
}
