import type { FastifyReply, FastifyRequest } from 'fastify';
import { API_KEY_MAX_EXPIRY_DAYS, expiryAfterDays } from '../../auth/api-keys.js';
import { PERMISSIONS } from '../../auth/roles.js';
import { DomainError, NotFoundError, ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { ownOrigin } from '../../http/guard.js';
import { changeOwnPassword } from '../../http/session-cookie.js';
import { userMessage } from '../errors.js';
import { renderPage, requestI18n } from '../render.js';
import { formFields, withParams } from '../request.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import { destination } from '../sign-in.js';
import type { I18n, WebAccounts, WebDeps } from '../types.js';

const KEY_ID = /^key_[a-z0-9]{1,64}$/;

type PasswordErrors = Partial<Record<'current' | 'next' | 'confirm', string>>;
type KeyErrors = Partial<Record<'name' | 'scopes' | 'expires', string>>;

/** The new-key form as shown; `allRights` is the explicit choice of a key that follows the user's rights. */
interface KeyForm {
  name: string;
  scopes: string[];
  allRights: boolean;
  expires: string;
}

function isReadScope(permission: string): boolean {
  return permission.endsWith(':read');
}

/** The password rules a refused password broke, each as a sentence of the catalog. */
export function passwordRuleMessages(i18n: I18n, error: DomainError): string {
  const details = Array.isArray(error.details) ? error.details : [];
  const rules = details.map((detail) => String(detail['rule'] ?? '')).filter((rule) => i18n.has(`account.password.rules.${rule}`));
  if (rules.length === 0) return userMessage(i18n, error);
  return `${i18n.t('account.password.rules.intro')} ${rules.map((rule) => i18n.t(`account.password.rules.${rule}`)).join(' ')}`;
}

function passwordErrorsOf(i18n: I18n, error: unknown): PasswordErrors | null {
  if (!(error instanceof DomainError)) return null;
  if (error.code === 'weak_password') return { next: passwordRuleMessages(i18n, error) };
  if (error.code === 'password_unchanged') return { next: i18n.t('account.password.unchanged') };
  if (error.code === 'wrong_password' || error.code === 'invalid_credentials') return { current: i18n.t('account.password.current_wrong') };
  if (error.code === 'locked_out') return { current: userMessage(i18n, error) };
  return null;
}

function keyErrorsOf(i18n: I18n, error: unknown): KeyErrors | null {
  if (!(error instanceof DomainError)) return null;
  if (error.code === 'scope_exceeds_rights' || error.code === 'invalid_scopes') return { scopes: i18n.t('account.keys.scopes_beyond') };
  if (error.code === 'invalid_expiry') return { expires: i18n.t('account.keys.expires_invalid', { max: API_KEY_MAX_EXPIRY_DAYS }) };
  if (error.code === 'expiry_exceeds_credential') return { expires: userMessage(i18n, error) };
  if (error instanceof ValidationError) return { name: userMessage(i18n, error) };
  return null;
}

export function registerAccountPages(app: App, deps: WebDeps, accounts: WebAccounts): void {
  const { security } = deps;

  /** `then`: where the user was going when the password had to be changed first; they continue there afterwards. */
  const renderPassword = (request: FastifyRequest, reply: FastifyReply, then: string, errors: PasswordErrors, status: number) =>
    renderPage(request, reply, security, 'account-password', { title: 'account.password.title', then, errors }, status);

  // Every signed-in user may change their own password, also (and especially) one that must be changed.
  app.get('/account/password', { config: { permission: 'authenticated' } }, async (request, reply) =>
    renderPassword(request, reply, destination(formFields(request.query).one('next')), {}, 200),
  );

  app.post('/account/password', { config: { permission: 'authenticated', rateLimit: 'login' } }, async (request, reply) => {
    const i18n = requestI18n(request);
    const form = formFields(request.body);
    const then = destination(form.one('next'));
    // Passwords are taken as typed: spaces at either end belong to them.
    const current = form.all('current_password')[0] ?? '';
    const next = form.all('new_password')[0] ?? '';
    const confirm = form.all('confirm_password')[0] ?? '';
    const errors: PasswordErrors = {};
    if (current === '') errors.current = i18n.t('account.password.current_required');
    if (next !== confirm) errors.confirm = i18n.t('account.password.mismatch');
    if (Object.keys(errors).length > 0) return renderPassword(request, reply, then, errors, 400);
    try {
      await changeOwnPassword(accounts, request, reply, current, next);
    } catch (error) {
      const fieldErrors = passwordErrorsOf(i18n, error);
      if (fieldErrors === null) throw error;
      return renderPassword(request, reply, then, fieldErrors, 400);
    }
    return reply.redirect(withParams(then, { notice: 'password_changed' }), 303);
  });

  const renderKeys = async (
    request: FastifyRequest,
    reply: FastifyReply,
    extra: { errors?: KeyErrors; form?: KeyForm; created?: { key: string; name: string; tryPath: string } },
    status: number,
  ) => {
    const actor = accounts.actor(request);
    const keys = await accounts.apiKeys.list({ user: actor.principal.name }, actor);
    const grantable = PERMISSIONS.filter((permission) => actor.principal.can(permission));
    // A new key starts with the least: reading what the user may read. More is ticked on purpose.
    const fresh: KeyForm = { name: '', scopes: grantable.filter(isReadScope), allRights: false, expires: '' };
    return renderPage(
      request,
      reply,
      security,
      'api-keys',
      {
        title: 'account.keys.title',
        keys,
        grantable,
        errors: extra.errors ?? {},
        form: extra.form ?? fresh,
        created: extra.created ?? null,
        // The address the browser reached the service at (X-Forwarded-* only from security.trusted_proxies).
        origin: ownOrigin(request),
        now: new Date().toISOString(),
      },
      status,
    );
  };

  // Every role holds keys:manage for its own keys; a key or token used here needs it in its scope. The
  // key service checks ownership and the bounds of a key or token (and refuses everything while the
  // password must be changed).
  app.get('/account/api-keys', { config: { permission: 'keys:manage' } }, async (request, reply) => renderKeys(request, reply, {}, 200));

  app.post('/account/api-keys', { config: { permission: 'keys:manage' } }, async (request, reply) => {
    const actor = accounts.actor(request);
    const i18n = requestI18n(request);
    const fields = formFields(request.body);
    const form: KeyForm = {
      name: fields.one('name') ?? '',
      scopes: fields.all('scopes'),
      allRights: fields.has('all_rights'),
      expires: fields.one('expires_days') ?? '',
    };
    const errors: KeyErrors = {};
    if (form.name === '') errors.name = i18n.t('account.keys.name_required');
    // No scope ticked is a slip, not a wish for every right: that takes its own box.
    if (!form.allRights && form.scopes.length === 0) errors.scopes = i18n.t('account.keys.scopes_required');
    let expiresAt: Date | null = null;
    if (form.expires !== '') {
      const days = /^\d{1,4}$/.test(form.expires) ? Number(form.expires) : NaN;
      if (!(days >= 1 && days <= API_KEY_MAX_EXPIRY_DAYS)) errors.expires = i18n.t('account.keys.expires_invalid', { max: API_KEY_MAX_EXPIRY_DAYS });
      else expiresAt = expiryAfterDays(days);
    }
    if (Object.keys(errors).length > 0) return renderKeys(request, reply, { errors, form }, 400);
    try {
      const created = await accounts.apiKeys.create(
        { user: actor.principal.name, name: form.name, scopes: form.allRights ? null : form.scopes, expiresAt },
        actor,
      );
      const tryPath = form.allRights || form.scopes.includes('jobs:read') ? '/api/v1/jobs' : '/api/v1/auth/me';
      // The secret is shown on this answer and nowhere else: it is never stored, so no redirect could show it.
      return await renderKeys(request, reply, { created: { key: created.key, name: created.record.name, tryPath } }, 201);
    } catch (error) {
      const fieldErrors = keyErrorsOf(i18n, error);
      if (fieldErrors === null) throw error;
      return renderKeys(request, reply, { errors: fieldErrors, form }, 400);
    }
  });

  app.post<{ Params: { id: string } }>('/account/api-keys/:id/revoke', { config: { permission: 'keys:manage' } }, async (request, reply) => {
    const returnTo = returnPath(request, '/account/api-keys');
    try {
      if (!KEY_ID.test(request.params.id)) throw new NotFoundError('api_key_not_found', `no API key ${request.params.id}`);
      await accounts.apiKeys.revoke(request.params.id, accounts.actor(request));
      return actionDone(request, reply, 'api_key_revoked', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });
}
