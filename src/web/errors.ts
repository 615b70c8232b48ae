import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { App } from '../http/app.js';
import { ConflictError, DomainError, ForbiddenError, NotFoundError, UnavailableError, ValidationError } from '../errors.js';
import { type I18n, renderPage, requestI18n } from './render.js';
import { wantsJson } from './request.js';
import type { WebSecurity } from './types.js';

export function statusOf(error: unknown): number {
  if (error instanceof ValidationError) return 400;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof ForbiddenError) return 403;
  if (error instanceof UnavailableError) return 503;
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

export function errorCode(error: unknown): string {
  if (error instanceof DomainError) return error.code;
  return statusOf(error) >= 500 ? 'internal_error' : 'bad_request';
}

/**
 * Errors on pages come back as a page in the user's language (or JSON for inline actions), with
 * the status the API would give. Details of internal errors go to the log only.
 */
export function installPageErrorHandler(app: App, security: WebSecurity): void {
  app.setErrorHandler(async (error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const status = statusOf(error);
    if (status >= 500) request.log.error({ err: error }, 'page failed');
    const i18n = requestI18n(request);
    const message = userMessage(i18n, error);
    if (wantsJson(request)) return reply.status(status).send({ error: { code: errorCode(error), message } });
    return renderPage(request, reply, security, 'error', { status, message, title: i18n.t(status === 404 ? 'errors.not_found_title' : 'errors.title') }, status);
  });
}
