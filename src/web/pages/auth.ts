import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuthenticationError } from '../../auth/errors.js';
import type { LoginResult } from '../../auth/login.js';
import { DomainError, TooManyRequestsError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { clientOf } from '../../http/guard.js';
import { clearSessionCookie, signIn } from '../../http/session-cookie.js';
import type { PageErrorHandler } from '../errors.js';
import { renderPage, requestI18n } from '../render.js';
import { formFields, withParams } from '../request.js';
import { type LoginForm, destination, loginPath, loginView } from '../sign-in.js';
import type { I18n, WebAccounts, WebDeps } from '../types.js';
import { passwordRuleMessages } from './account.js';

/** The form of the tokens the service prints in setup links; anything else is refused unread. */
const SETUP_TOKEN = /^[A-Za-z0-9_-]{16,128}$/;

type SetupState = 'ready' | 'invalid' | 'done';
type SetupErrors = Partial<Record<'username' | 'password' | 'confirm', string>>;

/** "30 seconds", "2 minutes": how long a locked-out or throttled user has to wait. */
function waitText(i18n: I18n, seconds: number): string {
  if (seconds < 60) return i18n.tn('auth.wait.seconds', seconds, { n: i18n.fmt.number(seconds) });
  const minutes = Math.ceil(seconds / 60);
  return i18n.tn('auth.wait.minutes', minutes, { n: i18n.fmt.number(minutes) });
}

/**
 * Signing in and out, and the first admin's setup. Sign-in and setup are public (the guard checks
 * only that a form came from this site); signing out needs a session and its CSRF token.
 */
export function registerAuthPages(app: App, deps: WebDeps, accounts: WebAccounts, pageErrors: PageErrorHandler): void {
  const { security } = deps;

  // While no admin exists nobody can sign in: the page says how to create the first one instead of leaving the visitor guessing.
  const renderLogin = async (request: FastifyRequest, reply: FastifyReply, form: LoginForm, status: number) =>
    renderPage(request, reply, security, 'login', { ...loginView(form), firstRun: await accounts.setup.needed() }, status);

  /** Too many attempts: from this address (the rate limit) or for this account or address (a lockout). The form stays. */
  const tooManyAttempts = (request: FastifyRequest, reply: FastifyReply, error: TooManyRequestsError, form: Omit<LoginForm, 'problem'>) => {
    const i18n = requestI18n(request);
    const key = error.code === 'locked_out' ? 'auth.login.locked_out' : 'auth.login.rate_limited';
    void reply.header('retry-after', String(error.retryAfterSeconds));
    return renderLogin(request, reply, { ...form, problem: i18n.t(key, { wait: waitText(i18n, error.retryAfterSeconds) }) }, 429);
  };

  app.get('/login', { config: { permission: 'public' } }, async (request, reply) => {
    if (security.currentUser(request) !== null) return reply.redirect('/', 303);
    return renderLogin(request, reply, { next: destination(formFields(request.query).one('next')), username: '', problem: null }, 200);
  });

  app.post(
    '/login',
    {
      config: { permission: 'public', rateLimit: 'login' },
      // The rate limit refuses before the form is read: the page then comes back empty, with the wait.
      errorHandler: (error, request, reply) =>
        error instanceof TooManyRequestsError ? tooManyAttempts(request, reply, error, { next: '/', username: '' }) : pageErrors(error, request, reply),
    },
    async (request, reply) => {
      const i18n = requestI18n(request);
      const fields = formFields(request.body);
      // Passwords are taken as typed: spaces at either end belong to them.
      const form = { next: destination(fields.one('next')), username: fields.one('username') ?? '' };
      const password = fields.all('password')[0] ?? '';
      if (form.username === '' || password === '') return renderLogin(request, reply, { ...form, problem: i18n.t('auth.login.missing') }, 400);
      let signedIn: LoginResult;
      try {
        signedIn = await signIn(accounts.login, request, reply, form.username, password);
      } catch (error) {
        // One sentence for an unknown name, a wrong password and a disabled account: the page never tells which names exist.
        if (error instanceof AuthenticationError) return renderLogin(request, reply, { ...form, problem: i18n.t('auth.login.failed') }, 401);
        if (error instanceof TooManyRequestsError) return tooManyAttempts(request, reply, error, form);
        throw error;
      }
      if (signedIn.principal.mustChangePassword)
        return reply.redirect(withParams('/account/password', { next: form.next === '/' ? undefined : form.next }), 303);
      return reply.redirect(form.next, 303);
    },
  );

  app.post('/logout', { config: { permission: 'authenticated' } }, async (request, reply) => {
    const { principal, client } = accounts.actor(request);
    await accounts.logout(principal, client);
    clearSessionCookie(request, reply);
    return reply.redirect(loginPath('/', 'signed_out'), 303);
  });

  const setupState = async (token: string): Promise<SetupState> => {
    if (!(await accounts.setup.needed())) return 'done';
    return SETUP_TOKEN.test(token) && (await accounts.setup.isValid(token)) ? 'ready' : 'invalid';
  };

  const renderSetup = (
    request: FastifyRequest,
    reply: FastifyReply,
    state: SetupState,
    form: { token: string; username: string },
    errors: SetupErrors,
    status: number,
  ) => renderPage(request, reply, security, 'setup', { title: 'auth.setup.title', state, form, errors }, status);

  /** A link that cannot be used, with the status the API gives for the same refusal. */
  const refuseSetup = (request: FastifyRequest, reply: FastifyReply, state: Exclude<SetupState, 'ready'>) =>
    renderSetup(request, reply, state, { token: '', username: '' }, {}, state === 'done' ? 409 : 401);

  app.get('/setup', { config: { permission: 'public' } }, async (request, reply) => {
    const token = formFields(request.query).one('token') ?? '';
    const state = await setupState(token);
    if (state !== 'ready') return refuseSetup(request, reply, state);
    return renderSetup(request, reply, state, { token, username: '' }, {}, 200);
  });

  app.post('/setup', { config: { permission: 'public', rateLimit: 'login' } }, async (request, reply) => {
    const i18n = requestI18n(request);
    const fields = formFields(request.body);
    const form = { token: fields.one('token') ?? '', username: fields.one('username') ?? '' };
    const password = fields.all('password')[0] ?? '';
    const state = await setupState(form.token);
    if (state !== 'ready') return refuseSetup(request, reply, state);
    const errors: SetupErrors = {};
    if (form.username === '') errors.username = i18n.t('auth.setup.name_required');
    if (password !== (fields.all('confirm_password')[0] ?? '')) errors.confirm = i18n.t('account.password.mismatch');
    if (Object.keys(errors).length > 0) return renderSetup(request, reply, state, form, errors, 400);
    const client = clientOf(request);
    try {
      await accounts.setup.complete(form.token, form.username, password, client);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      if (error.code === 'weak_password') return renderSetup(request, reply, state, form, { password: passwordRuleMessages(i18n, error) }, 400);
      if (error.code === 'invalid_user_name') return renderSetup(request, reply, state, form, { username: i18n.t('users.name_invalid') }, 400);
      if (error.code === 'invalid_setup_token') return refuseSetup(request, reply, 'invalid');
      if (error.code === 'setup_done') return refuseSetup(request, reply, 'done');
      throw error;
    }
    try {
      await signIn(accounts.login, request, reply, form.username, password);
    } catch (error) {
      // The admin exists either way; should signing in fail now (this address locked out), the sign-in page is the way in.
      if (error instanceof DomainError) return reply.redirect(loginPath('/', 'setup_complete_sign_in'), 303);
      throw error;
    }
    return reply.redirect(withParams('/', { notice: 'setup_complete' }), 303);
  });
}
