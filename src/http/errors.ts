import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorCode } from '../error-codes.js';
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  TooManyRequestsError,
  UnauthenticatedError,
  UnavailableError,
  ValidationError,
} from '../errors.js';

interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown };
}

/** The HTTP status of a domain error; the web pages answer with the same ones. */
export function domainStatus(error: DomainError): number {
  if (error instanceof ValidationError) return 400;
  if (error instanceof NotFoundError) return 404;
  if (error instanceof ConflictError) return 409;
  if (error instanceof ForbiddenError) return 403;
  if (error instanceof UnauthenticatedError) return 401;
  if (error instanceof TooManyRequestsError) return 429;
  if (error instanceof UnavailableError) return 503;
  return 500;
}

/** Fastify's own client errors, by code, as our error codes. */
const FASTIFY_CLIENT_ERRORS: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_body',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_body',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_body',
  FST_ERR_MAX_PARAM_LENGTH: 'uri_too_long',
  FST_ERR_BAD_URL: 'invalid_url',
};

/**
 * Errors the router raises before any route is chosen (a path parameter too long, a malformed
 * percent-encoding) get the same error shape as every other answer.
 */
export function answerFrameworkError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply): void {
  const status = typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : 400;
  void reply.status(status).send({ error: { code: FASTIFY_CLIENT_ERRORS[error.code] ?? 'bad_request', message: error.message } });
}

/** Told about every request that failed on our side (the application log records them). */
export type ServerErrorSink = (error: unknown, request: FastifyRequest) => void;

/**
 * One place maps every error to `{"error": {"code", "message", "details"}}`. Client errors say
 * what was wrong and where; server errors say nothing beyond "internal error" (details go to the log).
 */
export function installErrorHandlers(
  app: FastifyInstance,
  onServerError?: ServerErrorSink,
  pageNotFound?: (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
): void {
  app.setErrorHandler<FastifyError | DomainError | Error>((error, request, reply) => {
    let status: number;
    let body: ErrorBody;
    if (error instanceof DomainError) {
      status = domainStatus(error);
      body = { error: { code: error.code, message: error.message, ...(error.details === undefined ? {} : { details: error.details }) } };
    } else if ('validation' in error && Array.isArray(error.validation)) {
      status = 400;
      const details = error.validation.map((issue) => ({
        field: `${error.validationContext ?? 'body'}${issue.instancePath.replace(/\//g, '.')}${
          issue.keyword === 'additionalProperties' ? `.${String((issue.params as { additionalProperty?: string }).additionalProperty)}` : ''
        }`,
        message: issue.keyword === 'additionalProperties' ? 'is not a known field' : (issue.message ?? 'is invalid'),
      }));
      const first = details[0];
      body = { error: { code: 'validation_failed', message: first ? `${first.field} ${first.message}` : 'invalid request', details } };
    } else if ('statusCode' in error && typeof error.statusCode === 'number' && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode;
      const code =
        ('code' in error && typeof error.code === 'string' && FASTIFY_CLIENT_ERRORS[error.code]) || (status === 429 ? 'rate_limited' : 'bad_request');
      body = { error: { code, message: error.message } };
    } else {
      status = 500;
      body = { error: { code: 'internal_error', message: 'internal error' } };
    }
    if (error instanceof TooManyRequestsError) void reply.header('retry-after', String(error.retryAfterSeconds));
    if (error instanceof UnauthenticatedError) void reply.header('www-authenticate', 'Bearer realm="disk2iso"');
    if (status >= 500 && !(error instanceof DomainError)) {
      request.log.error({ err: error }, 'request failed');
      onServerError?.(error, request);
    }
    return reply.status(status).send(body);
  });

  app.setNotFoundHandler((request, reply) => {
    if (pageNotFound && !request.url.startsWith('/api/')) return pageNotFound(request, reply);
    return reply.status(404).send({ error: { code: 'not_found', message: `no route ${request.method} ${request.url.split('?')[0] ?? ''}` } });
  });
}
