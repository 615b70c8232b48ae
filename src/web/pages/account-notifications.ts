import type { FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { DOMAIN_EVENT_PERMISSIONS } from '../../http/routes/live.js';
import { PUSH_EVENT_TYPES } from '../../notifications/model.js';
import { renderPage } from '../render.js';
import { formFields } from '../request.js';
import { actionDone, actionFailed } from '../respond.js';
import type { WebDeps } from '../types.js';

const SUBSCRIPTION_ID = /^psh_[a-z0-9]{1,64}$/;

/**
 * "Notifications on this device": the page's script subscribes the browser through its service
 * worker and the push API (/api/v1/notifications/push/…); the page itself lists the user's devices
 * and removes one after asking, with or without JavaScript.
 */
export function registerAccountNotificationPages(app: App, deps: WebDeps): void {
  const { security, push } = deps;

  const render = async (request: FastifyRequest, reply: FastifyReply, confirm: string | null) => {
    const user = security.user(request);
    const devices = await push.list(user.userId);
    const eventTypes = PUSH_EVENT_TYPES.filter((type) => {
      const needed = DOMAIN_EVENT_PERMISSIONS[type];
      return needed !== null && user.can(needed);
    });
    const confirming = confirm === null ? null : (devices.find((device) => device.id === confirm) ?? null);
    return renderPage(request, reply, security, 'account-notifications', { title: 'account.push.title', devices, eventTypes, confirming }, 200);
  };

  app.get('/account/notifications', { config: { permission: 'jobs:read' } }, async (request, reply) => {
    const remove = formFields(request.query).one('remove');
    return render(request, reply, remove !== undefined && SUBSCRIPTION_ID.test(remove) ? remove : null);
  });

  app.post<{ Params: { id: string } }>('/account/notifications/:id/remove', { config: { permission: 'jobs:read' } }, async (request, reply) => {
    const returnTo = '/account/notifications';
    try {
      if (!SUBSCRIPTION_ID.test(request.params.id)) throw new NotFoundError('push_subscription_not_found', `no push subscription ${request.params.id}`);
      await push.unsubscribe(security.user(request).userId, request.params.id);
      return actionDone(request, reply, 'push_device_removed', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });
}
