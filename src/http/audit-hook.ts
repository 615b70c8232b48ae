import type { FastifyInstance } from 'fastify';
import type { AuditTrail } from '../audit/trail.js';
import type { JsonObject } from '../json.js';
import { clientOf } from './guard.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * Set by a handler whose answer does not show what it did (a web form answers with a redirect):
     * the details to record, or null when it did nothing after all (a settings form with no change).
     * Undefined leaves the details to the hook.
     */
    auditDetails: JsonObject | null | undefined;
  }
}

/** Pulls the id of what a request created or changed out of its JSON answer, when there is one. */
function answeredId(payload: unknown): string | undefined {
  if (typeof payload !== 'string' || !payload.startsWith('{')) return undefined;
  try {
    const id = (JSON.parse(payload) as { id?: unknown }).id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/** `{imaging: {verify: true}}` gives `['imaging.verify']`; the names of the settings a change touched. */
function leafKeys(value: object, prefix = ''): string[] {
  return Object.entries(value).flatMap(([key, child]) => {
    if (key === '_csrf') return [];
    const path = prefix === '' ? key : `${prefix}.${key}`;
    return typeof child === 'object' && child !== null && !Array.isArray(child) ? leafKeys(child as object, path) : [path];
  });
}

/**
 * Records the actions routes declare with `config.audit` (job creation and deletion, archive
 * deletion, configuration changes) once they have succeeded, with who did them from where. The
 * services stay unaware of who calls them; the API and the pages are audited the same way.
 */
export function installAuditHook(app: FastifyInstance, audit: Pick<AuditTrail, 'record'>): void {
  app.decorateRequest('auditDetails', undefined);
  app.addHook('onSend', async (request, reply, payload) => {
    const audited = request.routeOptions.config.audit;
    if (audited === undefined || reply.statusCode >= 400 || request.principal === null || request.auditDetails === null) return payload;
    const client = clientOf(request);
    const details: JsonObject = { ...(request.params as JsonObject) };
    if (request.auditDetails !== undefined) {
      Object.assign(details, request.auditDetails);
    } else {
      const id = answeredId(payload);
      if (id !== undefined) details['id'] = id;
      const body = request.body;
      if (audited.event_type === 'config' && typeof body === 'object' && body !== null) details['changed'] = leafKeys(body);
    }
    if (request.principal.apiKeyId !== undefined) details['api_key_id'] = request.principal.apiKeyId;
    await audit.record({ ...audited, user: request.principal.name, ip_address: client.ip, user_agent: client.userAgent, details });
    return payload;
  });
}
