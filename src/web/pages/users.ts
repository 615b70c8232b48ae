import type { FastifyReply, FastifyRequest } from 'fastify';
import { USER_ROLES } from '../../auth/roles.js';
import { DomainError, NotFoundError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { userMessage } from '../errors.js';
import { renderPage, requestI18n } from '../render.js';
import { formFields, withParams } from '../request.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import type { WebAccounts, WebDeps } from '../types.js';
import { passwordRuleMessages } from './account.js';
import { pagination } from './pagination.js';

const USER_NAME = /^[a-z][a-z0-9._-]{2,31}$/;
const AUDIT_PAGE_SIZE = 50;
const DAY_MS = 86_400_000;

type NewUserErrors = Partial<Record<'name' | 'role' | 'password', string>>;

function checkedName(name: string): string {
  if (!USER_NAME.test(name)) throw new NotFoundError('user_not_found', `no user ${name}`);
  return name;
}

function parseDay(value: string | undefined): Date | null {
  if (value === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(value)) return null;
  const day = new Date(`${value}T00:00:00Z`);
  return Number.isNaN(day.getTime()) ? null : day;
}

/** User management and the audit trail, for administrators. */
export function registerUserPages(app: App, deps: WebDeps, accounts: WebAccounts): void {
  const { security } = deps;

  const renderUsers = async (request: FastifyRequest, reply: FastifyReply, form: { name: string; role: string }, errors: NewUserErrors, status: number) => {
    const actor = accounts.actor(request);
    const users = await accounts.users.list(actor);
    return renderPage(request, reply, security, 'users', { title: 'users.title', users, roles: USER_ROLES, form, errors }, status);
  };

  app.get('/users', { config: { permission: 'users:admin' } }, async (request, reply) => renderUsers(request, reply, { name: '', role: 'viewer' }, {}, 200));

  app.post('/users', { config: { permission: 'users:admin' } }, async (request, reply) => {
    const i18n = requestI18n(request);
    const fields = formFields(request.body);
    const form = { name: fields.one('name') ?? '', role: fields.one('role') ?? '' };
    const password = fields.all('password')[0] ?? '';
    const errors: NewUserErrors = {};
    if (!USER_NAME.test(form.name)) errors.name = i18n.t('users.name_invalid');
    if (!(USER_ROLES as readonly string[]).includes(form.role)) errors.role = i18n.t('users.role_invalid');
    if (Object.keys(errors).length > 0) return renderUsers(request, reply, form, errors, 400);
    try {
      // The password is handed out by the admin, so its owner has to replace it at the first sign-in.
      await accounts.users.add({ name: form.name, role: form.role, password, requireChange: true }, accounts.actor(request));
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      if (error.code === 'weak_password') return renderUsers(request, reply, form, { password: passwordRuleMessages(i18n, error) }, 400);
      if (error.code === 'user_exists' || error.code === 'invalid_user_name') return renderUsers(request, reply, form, { name: userMessage(i18n, error) }, 400);
      throw error;
    }
    return reply.redirect(withParams('/users', { notice: 'user_added' }), 303);
  });

  const userAction = (path: string, notice: string, run: (name: string, request: FastifyRequest) => Promise<unknown>) => {
    app.post<{ Params: { name: string } }>(path, { config: { permission: 'users:admin' } }, async (request, reply) => {
      const returnTo = returnPath(request, '/users');
      try {
        await run(checkedName(request.params.name), request);
        return actionDone(request, reply, notice, returnTo);
      } catch (error) {
        return actionFailed(request, reply, error, returnTo);
      }
    });
  };
  userAction('/users/:name/role', 'user_role_changed', (name, request) =>
    accounts.users.setRole(name, formFields(request.body).one('role') ?? '', accounts.actor(request)),
  );
  userAction('/users/:name/disable', 'user_disabled', (name, request) => accounts.users.disable(name, accounts.actor(request)));
  userAction('/users/:name/enable', 'user_enabled', (name, request) => accounts.users.enable(name, accounts.actor(request)));
  userAction('/users/:name/delete', 'user_deleted', (name, request) => accounts.users.delete(name, accounts.actor(request)));

  app.get<{ Params: { name: string } }>('/users/:name/delete', { config: { permission: 'users:admin' } }, async (request, reply) => {
    const name = checkedName(request.params.name);
    const users = await accounts.users.list(accounts.actor(request));
    const user = users.find((candidate) => candidate.name === name);
    if (user === undefined) throw new NotFoundError('user_not_found', `no user ${name}`);
    return renderPage(request, reply, security, 'user-delete', { title: 'users.delete.title', target: user });
  });

  app.get('/audit', { config: { permission: 'users:admin' } }, async (request, reply) => {
    const i18n = requestI18n(request);
    const query = formFields(request.query);
    const filter = {
      user: (query.one('user') ?? '').slice(0, 64),
      eventType: (query.one('event_type') ?? '').slice(0, 64),
      from: query.one('from') ?? '',
      to: query.one('to') ?? '',
    };
    const errors: Record<string, string> = {};
    const since = filter.from === '' ? null : parseDay(filter.from);
    const until = filter.to === '' ? null : parseDay(filter.to);
    if (filter.from !== '' && since === null) errors['from'] = i18n.t('archive.filter.date_invalid');
    if (filter.to !== '' && until === null) errors['to'] = i18n.t('archive.filter.date_invalid');
    const page = Math.max(1, Number.parseInt(query.one('page') ?? '1', 10) || 1);
    const { items, total } = await accounts.audit.list({
      ...(filter.user === '' ? {} : { user: filter.user }),
      ...(filter.eventType === '' ? {} : { eventType: filter.eventType }),
      ...(since === null ? {} : { since }),
      ...(until === null ? {} : { until: new Date(until.getTime() + DAY_MS) }),
      limit: AUDIT_PAGE_SIZE,
      offset: (page - 1) * AUDIT_PAGE_SIZE,
    });
    const params = { user: filter.user || undefined, event_type: filter.eventType || undefined, from: filter.from || undefined, to: filter.to || undefined };
    return renderPage(request, reply, security, 'audit', {
      title: 'audit.title',
      entries: items,
      filter,
      errors,
      pages: pagination(page, AUDIT_PAGE_SIZE, total),
      pageLink: (number: number) => withParams('/audit', { ...params, page: number === 1 ? undefined : String(number) }),
    });
  });
}
