import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AuthenticationError, PasswordChangeRequiredError } from '../auth/errors.js';
import type { ErrorCode } from '../error-codes.js';
import { DomainError, TooManyRequestsError } from '../errors.js';
import { domainStatus } from '../http/errors.js';
import { SESSION_COOKIE, ownOrigin } from '../http/guard.js';
import { clearSessionCookie } from '../http/session-cookie.js';
import { NOBODY, renderPage, renderView, requestI18n } from './render.js';
import { currentPath, isScriptRequest, localPath, wantsJson, withParams } from './request.js';
import { loginPath, loginView } from './sign-in.js';
import type { I18n, WebSecurity } from './types.js';

export function statusOf(error: unknown): number {
  if (error instanceof DomainError) return domainStatus(error);
  if (typeof error === 'object' && error !== null && 'statusCode' in error) {
    const status = (error as FastifyError).statusCode;
    if (typeof status === 'number' && status >= 400 && status < 500) return status;
  }
  return 500;
}

/**
 * What went wrong, in the user's language: the catalog's sentence for the error's code when there
 * is one, else the service's own message (which names the thing and the reason). Internal errors
 * never show their message.
 */
export function userMessage(i18n: I18n, error: unknown): string {
  if (error instanceof DomainError) {
    const key = `errors.${error.code}`;
    return i18n.has(key) ? i18n.t(key) : i18n.t('errors.generic', { message: error.message });
  }
  const status = statusOf(error);
  if (status === 403) return i18n.t('errors.forbidden');
  if (status === 404) return i18n.t('errors.not_found');
  if (status < 500) return i18n.t('errors.bad_request');
  return i18n.t('errors.internal');
}

export function errorCode(error: unknown): ErrorCode {
  if (error instanceof DomainError) return error.code;
  return statusOf(error) >= 500 ? 'internal_error' : 'bad_request';
}

/** A refusal for want of a permission (not a stale form's, which is also a 403). */
function isRoleRefusal(error: unknown): boolean {
  return error instanceof DomainError && error.code === 'permission_denied';
}

export type PageErrorHandler = (error: unknown, request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>;

/** The guard's refusals of a request without valid credentials (a wrong password typed into a form is no such thing). */
const SIGN_IN_CODES: ReadonlySet<string> = new Set(['unauthenticated', 'invalid_credentials']);

function isSignInRequired(error: unknown): error is AuthenticationError {
  return error instanceof AuthenticationError && SIGN_IN_CODES.has(error.code);
}

/** Errors another page resolves (sign-in, the password page): the page error handler sends the user there. */
export function isResolvedElsewhere(error: unknown): boolean {
  return isSignInRequired(error) || error instanceof PasswordChangeRequiredError;
}

/**
 * Where a request goes back to after signing in or changing the password: the page it asked for,
 * or for a form the page it was sent from: its return_to when the form was read (the guard refuses
 * before that), else the Referer when it is a page of this site.
 */
function resumePath(request: FastifyRequest): string {
  if (request.method === 'GET' || request.method === 'HEAD') return currentPath(request);
  const body = request.body;
  const returnTo = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['return_to'] : undefined;
  if (typeof returnTo === 'string') return localPath(returnTo, '/');
  const referer = request.headers.referer;
  if (typeof referer !== 'string') return '/';
  try {
    const url = new URL(referer);
    return url.origin === new URL(ownOrigin(request)).origin ? localPath(`${url.pathname}${url.search}`, '/') : '/';
  } catch {
    return '/';
  }
}

/**
 * Nobody (or nobody any more) is signed in. Loading a page sends the browser to the sign-in page
 * and back here afterwards; a page's script gets a 401 in JSON (its page then reloads, which lands
 * on the sign-in page); a form gets the sign-in page itself, with 401, and comes back to its page.
 */
function signInRequired(error: AuthenticationError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const i18n = requestI18n(request);
  // A session that ended leaves its cookie behind; dropping it spares every later request the lookup.
  const ended = request.cookies[SESSION_COOKIE] !== undefined;
  if (ended) clearSessionCookie(request, reply);
  if (isScriptRequest(request)) return reply.status(401).send({ error: { code: error.code, message: i18n.t('errors.unauthenticated') } });
  const next = resumePath(request);
  if (request.method === 'GET' || request.method === 'HEAD') return reply.redirect(loginPath(next, ended ? 'session_ended' : undefined), 303);
  const notice = ended ? { notice: i18n.t('notices.session_ended') } : {};
  return renderView(request, reply, NOBODY, 'login', { ...loginView({ next, username: '', problem: null }), ...notice }, 401);
}

/**
 * The password must be changed first: every page sends the user to the password page (which
 * explains why), and back where they were going once it is changed. Scripts get the 403 in JSON.
 */
function passwordChangeRequired(error: PasswordChangeRequiredError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (isScriptRequest(request)) return reply.status(403).send({ error: { code: error.code, message: userMessage(requestI18n(request), error) } });
  const next = resumePath(request);
  return reply.redirect(withParams('/account/password', { next: next === '/' ? undefined : next }), 303);
}

/**
 * Errors on pages come back as a page in the user's language (or JSON for inline actions), with
 * the status the API would give. Details of internal errors go to the log only. Missing sign-in
 * and a password that must be changed first lead to the pages that resolve them.
 */
export function createPageErrorHandler(security: WebSecurity, loadTheme: (request: FastifyRequest) => Promise<void>): PageErrorHandler {
  return async (error, request, reply) => {
    if (error instanceof PasswordChangeRequiredError) return passwordChangeRequired(error, request, reply);
    if (isSignInRequired(error)) return signInRequired(error, request, reply);
    const status = statusOf(error);
    if (status >= 500) request.log.error({ err: error }, 'page failed');
    if (error instanceof TooManyRequestsError) void reply.header('retry-after', String(error.retryAfterSeconds));
    const i18n = requestI18n(request);
    const message = userMessage(i18n, error);
    if (wantsJson(request)) return reply.status(status).send({ error: { code: errorCode(error), message } });
    // A refusal before the route's own hooks (the guard's 403) has not read the user's scheme yet. The
    // error page must appear even when the database is what failed: then it follows the system.
    await loadTheme(request).catch(() => undefined);
    const user = security.currentUser(request);
    // A role's refusal says whose role it was and who can help, rather than that something went wrong.
    if (isRoleRefusal(error) && user !== null) {
      const shown = i18n.t('errors.forbidden_role', { role: i18n.t(`roles.${user.role}`) });
      return renderPage(request, reply, security, 'error', { status, message: shown, title: i18n.t('errors.forbidden_title') }, status);
    }
    return renderPage(
      request,
      reply,
      security,
      'error',
      { status, message, title: i18n.t(status === 404 ? 'errors.not_found_title' : 'errors.title') },
      status,
    );
  };
}

/**
 * The answer to a URL nothing is registered for (outside /api/, whose 404 stays JSON): a page in
 * the user's language, with the signed-in user's navigation (the caller looks the session up: no
 * route's guard has seen the request).
 */
export async function renderNotFoundPage(request: FastifyRequest, reply: FastifyReply, security: WebSecurity): Promise<FastifyReply> {
  const i18n = requestI18n(request);
  const message = i18n.t('errors.page_not_found');
  if (wantsJson(request)) return reply.status(404).send({ error: { code: 'not_found', message } });
  return renderPage(request, reply, security, 'error', { status: 404, message, title: i18n.t('errors.not_found_title') }, 404);
}
