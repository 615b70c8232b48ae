import type { FastifyReply, FastifyRequest } from 'fastify';
import { setPath } from '../../config/load.js';
import { ConflictError, type DomainError, NotFoundError, ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import type { JsonObject } from '../../json.js';
import { SUBSCRIBABLE_EVENT_TYPES, type SubscribableEventType } from '../../notifications/model.js';
import { maskUrlCredentials } from '../../system/settings.js';
import { renderPage, requestI18n } from '../render.js';
import { type FormFields, formFields, withParams } from '../request.js';
import { actionDone, actionFailed } from '../respond.js';
import { SETTINGS_SECTIONS, type SettingsSection, parseSettingsForm, sectionFields, withSubmitted } from '../settings-form.js';
import type { I18n, WebDeps } from '../types.js';

/** The newest deliveries the page shows; the API pages through all of them. */
const DELIVERIES_SHOWN = 20;

/** What the webhook form shows after a submission: the new endpoint's secret (only this once), or why it was refused. */
interface WebhookForm {
  created: { name: string; secret: string } | null;
  error: string | null;
}

const ENDPOINT_ID = /^whk_[a-z0-9]{1,64}$/;

/** A section whose form was refused: its messages, and what was submitted to show again. */
interface Refused {
  section: SettingsSection;
  errors: Record<string, string>;
  form: FormFields;
}

/** Codes whose catalog sentence says only that something is invalid: the detail's own reason says more. */
const UNSPECIFIC_CODES: ReadonlySet<string> = new Set(['invalid_config', 'invalid_setting', 'validation_failed']);

/**
 * The settings service's refusals as a message per field, in the user's language: the catalog's
 * sentence for the check the value failed (a detail names it when one refusal holds several), and
 * the server's reason where the catalog has none of its own (the schema's words, the folders allowed).
 */
function refusalMessages(i18n: I18n, error: DomainError, labelOf: (key: string) => string): Record<string, string> {
  const details = error.details === undefined ? [] : Array.isArray(error.details) ? error.details : [error.details];
  const messages: Record<string, string> = {};
  for (const entry of details) {
    const key = entry['key'];
    if (typeof key !== 'string' || key === '') continue;
    const code = typeof entry['code'] === 'string' ? entry['code'] : error.code;
    const parts = [refusalSentence(i18n, code, error, entry, labelOf)];
    const allowed = entry['allowed'];
    if (Array.isArray(allowed) && allowed.length > 0) parts.push(i18n.t('config.errors.allowed', { values: allowed.map(String).join(', ') }));
    messages[key] = messages[key] === undefined ? parts.join(' ') : `${messages[key]} ${parts.join(' ')}`;
  }
  return messages;
}

function refusalSentence(i18n: I18n, code: string, error: DomainError, entry: Record<string, unknown>, labelOf: (key: string) => string): string {
  if (code === 'setting_order') {
    const isLower = entry['key'] === entry['lower'];
    const other = String(isLower ? entry['upper'] : entry['lower']);
    const value = String(isLower ? entry['upper_value'] : entry['lower_value']);
    return i18n.t(isLower ? 'config.errors.below' : 'config.errors.above', { other: labelOf(other), value });
  }
  if (code === 'setting_fixed') return i18n.t('config.errors.fixed', { source: String(entry['source'] ?? '') });
  if (i18n.has(`errors.${code}`) && !UNSPECIFIC_CODES.has(code)) return i18n.t(`errors.${code}`);
  const reason = typeof entry['message'] === 'string' ? entry['message'] : error.message;
  return i18n.t('config.errors.invalid', { message: reason });
}

/** `{"imaging.read_attempts": 3}` -> `{"imaging": {"read_attempts": 3}}`, the shape the settings service takes. */
function nestedPatch(changes: Record<string, unknown>): JsonObject {
  const patch: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(changes)) setPath(patch, key, value);
  return patch as JsonObject;
}

export function registerConfigPages(app: App, deps: WebDeps): void {
  const { security, config } = deps;

  /** Runs a settings call; its refusal as field messages (and whether a setting is locked), or null when it passed. */
  const serviceRefusal = async (i18n: I18n, call: () => Promise<unknown>): Promise<{ messages: Record<string, string>; conflict: boolean } | null> => {
    try {
      await call();
      return null;
    } catch (error) {
      if (!(error instanceof ValidationError || error instanceof ConflictError)) throw error;
      const labels = new Map(SETTINGS_SECTIONS.flatMap((candidate) => sectionFields(config, candidate, i18n)).map((field) => [field.key, field.label]));
      return { messages: refusalMessages(i18n, error, (key) => labels.get(key) ?? key), conflict: error instanceof ConflictError };
    }
  };

  const renderConfig = async (
    request: FastifyRequest,
    reply: FastifyReply,
    refused: Refused | null,
    status: number,
    webhookForm: WebhookForm = { created: null, error: null },
  ): Promise<FastifyReply> => {
    const i18n = requestI18n(request);
    const sections = SETTINGS_SECTIONS.map((section) => {
      const fields = sectionFields(config, section, i18n);
      return refused?.section === section ? { section, fields: withSubmitted(fields, refused.form), errors: refused.errors } : { section, fields, errors: {} };
    });
    const webhooks = (await deps.notifications.listEndpoints()).map((endpoint) => ({ ...endpoint, url: maskUrlCredentials(endpoint.url) }));
    const deliveries = (await deps.notifications.listDeliveries({ limit: DELIVERIES_SHOWN })).items;
    return renderPage(
      request,
      reply,
      security,
      'config',
      {
        title: 'config.title',
        sections,
        browserNotifications: config.notifications.browser,
        mqtt: deps.mqtt.status(),
        webhooks,
        deliveries,
        webhookForm,
        eventTypes: SUBSCRIBABLE_EVENT_TYPES,
      },
      status,
    );
  };

  app.get('/config', { config: { permission: 'system:read' } }, async (request, reply) => renderConfig(request, reply, null, 200));

  app.post<{ Params: { section: string } }>(
    '/config/:section',
    { config: { permission: 'system:write', audit: { event_type: 'config', action: 'change' } } },
    async (request, reply) => {
      const section = SETTINGS_SECTIONS.find((candidate) => candidate === request.params.section);
      if (section === undefined) throw new ValidationError('unknown_section', `no settings section ${request.params.section}`);
      const i18n = requestI18n(request);
      const form = formFields(request.body);
      const { changes, errors } = parseSettingsForm(i18n, sectionFields(config, section, i18n), form);
      // The service's checks run on what did parse, so the page shows every refusal at once rather than one kind per attempt.
      const refused = Object.keys(changes).length === 0 ? null : await serviceRefusal(i18n, () => deps.settings.check(nestedPatch(changes)));
      if (Object.keys(errors).length > 0 || refused !== null) {
        const status = refused?.conflict === true ? 409 : 400;
        return renderConfig(request, reply, { section, errors: { ...refused?.messages, ...errors }, form }, status);
      }
      if (Object.keys(changes).length === 0) {
        // A form sends every field of its section; saving it unchanged changes nothing, so nothing is audited.
        request.auditDetails = null;
        return reply.redirect(`${withParams('/config', { notice: 'settings_unchanged' })}#${section}`, 303);
      }
      const failed = await serviceRefusal(i18n, () => deps.settings.update(nestedPatch(changes), security.user(request).name));
      if (failed !== null) return renderConfig(request, reply, { section, errors: failed.messages, form }, failed.conflict ? 409 : 400);
      request.auditDetails = { changed: Object.keys(changes) };
      return reply.redirect(`${withParams('/config', { notice: 'settings_saved' })}#${section}`, 303);
    },
  );

  app.post('/config/webhooks', { config: { permission: 'system:write', audit: { event_type: 'webhook', action: 'create' } } }, async (request, reply) => {
    const form = formFields(request.body);
    const events = SUBSCRIBABLE_EVENT_TYPES.filter((type) => form.all('webhook_events').includes(type)) as SubscribableEventType[];
    try {
      const created = await deps.notifications.createEndpoint({
        name: form.one('webhook_name') ?? '',
        url: form.one('webhook_url') ?? '',
        events,
        enabled: true,
      });
      request.auditDetails = { id: created.id };
      return renderConfig(request, reply, null, 201, { created: { name: created.name, secret: created.secret }, error: null });
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      request.auditDetails = null;
      return renderConfig(request, reply, null, 400, { created: null, error: error.message });
    }
  });

  app.post<{ Params: { id: string; action: string } }>(
    '/config/webhooks/:id/:action',
    { config: { permission: 'system:write', audit: { event_type: 'webhook', action: 'delete' } } },
    async (request, reply) => {
      const { id, action } = request.params;
      try {
        if (!ENDPOINT_ID.test(id)) throw new NotFoundError('webhook_endpoint_not_found', `webhook endpoint ${id} does not exist`, { id });
        if (action === 'delete') {
          await deps.notifications.deleteEndpoint(id);
          return actionDone(request, reply, 'webhook_deleted', '/config');
        }
        if (action !== 'test') throw new NotFoundError('not_found', `no action ${action}`);
        // A test sends, it changes nothing: not an audited change.
        request.auditDetails = null;
        await deps.notifications.sendTest({ endpointId: id });
        return actionDone(request, reply, 'notification_test_queued', '/config');
      } catch (error) {
        request.auditDetails = null;
        return actionFailed(request, reply, error, '/config');
      }
    },
  );

  app.post('/config/email/test', { config: { permission: 'system:write' } }, async (request, reply) => {
    await deps.notifications.sendTest({ channel: 'email' });
    return actionDone(request, reply, 'notification_test_queued', '/config');
  });
}
