import type { FastifyReply, FastifyRequest } from 'fastify';
import { errorCode, isResolvedElsewhere, statusOf, userMessage } from './errors.js';
import { requestI18n } from './render.js';
import { formFields, localPath, wantsJson, withParams } from './request.js';

/**
 * How a form action ends. A plain form gets POST-redirect-GET back to the page it came from, with
 * a one-shot notice or error code the page translates; an inline action (fetch from the page's
 * script) gets JSON with the translated message for its toast.
 */
export function returnPath(request: FastifyRequest, fallback: string): string {
  return localPath(formFields(request.body).one('return_to'), fallback);
}

/**
 * `subject` names what the action's outcome is about (`job:<id>:cancelled`), as the live stream's
 * toasts name it: the page shows one toast per outcome, whichever of the two reports it first.
 */
export function actionDone(request: FastifyRequest, reply: FastifyReply, notice: string, returnTo: string, subject?: string): FastifyReply {
  if (wantsJson(request)) {
    const i18n = requestI18n(request);
    return reply.send({ ok: true, notice, message: i18n.t(`notices.${notice}`), ...(subject === undefined ? {} : { subject }) });
  }
  return reply.redirect(withParams(returnTo, { notice }), 303);
}

export function actionFailed(request: FastifyRequest, reply: FastifyReply, error: unknown, returnTo: string): FastifyReply {
  const status = statusOf(error);
  if (status >= 500 || isResolvedElsewhere(error)) throw error;
  const code = errorCode(error);
  if (wantsJson(request)) {
    return reply.status(status).send({ error: { code, message: userMessage(requestI18n(request), error) } });
  }
  return reply.redirect(withParams(returnTo, { error: code }), 303);
}
