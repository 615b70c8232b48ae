import Type from 'typebox';
import { AUDIT_EVENTS, type AuditTrail } from '../../audit/trail.js';
import type { App } from '../app.js';
import { Limit, Nullable, Offset, SortOrder, Timestamp, errors } from '../schemas.js';

const AuditEntry = Type.Object(
  {
    id: Type.Integer(),
    timestamp: Timestamp,
    event_type: Type.String(),
    action: Type.String(),
    user: Nullable(Type.String()),
    ip_address: Nullable(Type.String()),
    user_agent: Nullable(Type.String()),
    details: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: false },
);

const ListQuery = Type.Object(
  {
    user: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    event_type: Type.Optional(Type.Enum(Object.keys(AUDIT_EVENTS))),
    action: Type.Optional(Type.String({ pattern: '^[a-z_]{1,64}$' })),
    since: Type.Optional(Timestamp),
    until: Type.Optional(Timestamp),
    order: Type.Optional(SortOrder),
    limit: Type.Optional(Limit(50, 500)),
    offset: Type.Optional(Offset),
  },
  { additionalProperties: false },
);

export function auditRoutes(audit: Pick<AuditTrail, 'list'>) {
  return (app: App): void => {
    app.get(
      '/api/v1/audit',
      {
        config: { permission: 'users:admin' },
        schema: {
          tags: ['users'],
          summary: 'The audit log',
          description: 'Newest first. Append-only: no route changes or removes entries; only the retention setting (security.audit_retention_days) does.',
          querystring: ListQuery,
          response: {
            200: Type.Object(
              { entries: Type.Array(AuditEntry), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() },
              { additionalProperties: false },
            ),
            ...errors(400, 401, 403),
          },
        },
      },
      async (request) => {
        const { user, event_type: eventType, action, since, until, order = 'desc', limit = 50, offset = 0 } = request.query;
        const { items, total } = await audit.list({
          ...(user === undefined ? {} : { user }),
          ...(eventType === undefined ? {} : { eventType }),
          ...(action === undefined ? {} : { action }),
          ...(since === undefined ? {} : { since: new Date(since) }),
          ...(until === undefined ? {} : { until: new Date(until) }),
          order,
          limit,
          offset,
        });
        return { entries: items, total, limit, offset };
      },
    );
  };
}
