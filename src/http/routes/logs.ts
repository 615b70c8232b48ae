import Type from 'typebox';
import type { EventLog } from '../../system/event-log.js';
import type { App } from '../app.js';
import { JobId, Limit, LogLevel, Nullable, Offset, Timestamp, errors } from '../schemas.js';

const LogLine = Type.Object(
  {
    id: Type.Integer(),
    at: Timestamp,
    level: LogLevel,
    source: Type.String({ description: 'Part of the service that wrote it: service, http, jobs, job, archives, settings' }),
    message: Type.String(),
    job_id: Nullable(Type.String()),
    details: Nullable(Type.Record(Type.String(), Type.Unknown())),
  },
  { additionalProperties: false },
);

export function logRoutes(eventLog: EventLog) {
  return (app: App): void => {
    app.get(
      '/api/v1/logs',
      {
        config: { permission: 'system:read' },
        schema: {
          tags: ['system'],
          summary: 'Application log, newest first',
          description:
            'Service events (start, stop, errors, setting changes, archive deletions) and every job log line and job state change. `level` is the lowest level shown (debug < info < warning < error).',
          querystring: Type.Object(
            {
              level: Type.Optional(LogLevel),
              since: Type.Optional(Timestamp),
              job_id: Type.Optional(JobId),
              limit: Type.Optional(Limit(100, 1000)),
              offset: Type.Optional(Offset),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object(
              { logs: Type.Array(LogLine), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() },
              { additionalProperties: false },
            ),
            ...errors(400),
          },
        },
      },
      async (request) => {
        const { level, since, job_id: jobId, limit = 100, offset = 0 } = request.query;
        return eventLog.list({ minLevel: level, since: since === undefined ? undefined : new Date(since), jobId, limit, offset });
      },
    );
  };
}
