import Type, { type Static } from 'typebox';
import { READ_ATTEMPTS } from '../../config/schema.js';
import { JOB_STATUSES, type JobStatus, RETRY_READ_ATTEMPTS } from '../../jobs/model.js';
import type { JobService } from '../../jobs/service.js';
import type { App } from '../app.js';
import { principalOf } from '../guard.js';
import { createResponseCache } from '../response-cache.js';
import { DeviceRef, HashAlgorithm, Job, JobId, JobLogLine, Limit, Offset, Priority, SortOrder, errors } from '../schemas.js';

const STATUS_LIST = new RegExp(`^(${JOB_STATUSES.join('|')})(,(${JOB_STATUSES.join('|')}))*$`);

const ListQuery = Type.Object(
  {
    status: Type.Optional(Type.String({ pattern: STATUS_LIST.source, description: `One status or a comma-separated list: ${JOB_STATUSES.join(', ')}` })),
    limit: Type.Optional(Limit(50, 500)),
    offset: Type.Optional(Offset),
    sort: Type.Optional(Type.Enum(['created', 'updated', 'name'], { default: 'created' })),
    order: Type.Optional(SortOrder),
  },
  { additionalProperties: false },
);

const CreateBody = Type.Object(
  {
    name: Type.Optional(
      Type.String({ minLength: 1, maxLength: 200, description: 'Image name (default: the disc label); no path separators, "..", or control characters' }),
    ),
    device: DeviceRef,
    options: Type.Optional(
      Type.Object(
        {
          read_attempts: Type.Optional(Type.Integer(READ_ATTEMPTS)),
          verify: Type.Optional(Type.Boolean()),
          checksums: Type.Optional(Type.Array(HashAlgorithm, { minItems: 1, uniqueItems: true })),
          priority: Type.Optional(Priority),
          eject: Type.Optional(
            Type.Boolean({ description: 'Open the tray once the image is complete and verified (default: the setting storage.delete_source_on_success)' }),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const UpdateBody = Type.Object(
  {
    action: Type.Optional(Type.Enum(['pause', 'resume', 'cancel', 'retry'])),
    priority: Type.Optional(Priority),
    device: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 4096,
        description:
          'With resume or retry: continue on this drive (id or device path of a listed drive) from the rescue map, e.g. the same drive under a new name or another drive holding the same disc; it must hold the disc the job started on (volume id and size, checked before reading)',
      }),
    ),
    keep_partial: Type.Optional(
      Type.Boolean({ description: 'With cancel: keep the partial image and its rescue map (default: keep when anything was rescued)' }),
    ),
  },
  { additionalProperties: false, description: 'An action, a new priority, or both' },
);

const RetryBadAreasBody = Type.Object(
  {
    read_attempts: Type.Optional(
      Type.Integer({
        ...RETRY_READ_ATTEMPTS,
        description: 'Read attempts per bad sector (default: imaging.read_attempts, at least 1)',
      }),
    ),
  },
  { additionalProperties: false },
);

const JobParams = Type.Object({ job_id: JobId }, { additionalProperties: false });

const JobList = Type.Object({ jobs: Type.Array(Job), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() }, { additionalProperties: false });

/** Responses to the list queries asked most recently (a polling UI's page, several clients on one view). */
const LIST_RESPONSES_KEPT = 16;

export function jobRoutes(jobs: JobService) {
  const listResponses = createResponseCache(LIST_RESPONSES_KEPT);

  return (app: App): void => {
    app.get(
      '/api/v1/jobs',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['jobs'],
          summary: 'List jobs',
          description: 'Newest first by default; filter by status, page with limit and offset.',
          querystring: ListQuery,
          response: { 200: JobList, ...errors(400) },
        },
      },
      async (request, reply) => {
        const { status, limit = 50, offset = 0, sort = 'created', order } = request.query;
        const key = JSON.stringify([status ?? null, limit, offset, sort, order ?? null]);
        const serialize = reply.getSerializationFunction('200');
        if (serialize === undefined) throw new Error('GET /api/v1/jobs has no compiled response serializer');
        const json = await listResponses.get(key, await jobs.listVersion(), async () =>
          serialize(await jobs.list({ status: status?.split(',') as JobStatus[] | undefined, limit, offset, sort, order })),
        );
        // Already serialized by this route's own response serializer; Fastify sends bytes with the
        // content type given as they are, so only the type checker has to be told it is the list.
        return reply.type('application/json; charset=utf-8').send(json as unknown as Static<typeof JobList>);
      },
    );

    app.post(
      '/api/v1/jobs',
      {
        config: { permission: 'jobs:write', audit: { event_type: 'job', action: 'create' } },
        schema: {
          tags: ['jobs'],
          summary: 'Create an imaging job',
          description:
            'Queues a job for the disc in a drive. Options default to the configured imaging settings. The drive is not read here: a busy drive holds the disc its ' +
            'running job recorded, an idle one what the background check last found. 503 media_probing when that check has no answer yet, or an older one that would ' +
            'refuse the disc (try again in a moment); 503 drive_not_responding when the drive does not answer. The job checks the disc again before it reads.',
          body: CreateBody,
          response: { 201: Job, ...errors(400, 404, 409, 413, 415, 503) },
        },
      },
      async (request, reply) => {
        const created = await jobs.create(request.body, principalOf(request).name);
        return reply.status(201).header('location', `/api/v1/jobs/${created.id}`).send(created);
      },
    );

    app.get(
      '/api/v1/jobs/:job_id',
      {
        config: { permission: 'jobs:read' },
        schema: { tags: ['jobs'], summary: 'Get a job', params: JobParams, response: { 200: Job, ...errors(400, 404) } },
      },
      async (request) => jobs.get(request.params.job_id),
    );

    app.patch(
      '/api/v1/jobs/:job_id',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags: ['jobs'],
          summary: 'Pause, resume, cancel or retry a job, or change its priority',
          description:
            'A running job stops at its next read with its rescue map saved; resume and retry continue from that map, on the same drive or on the one given as device. A job that stopped for lack of space is paused (pause_reason disk_full) and resumes. A refused action is 409 invalid_state.',
          params: JobParams,
          body: UpdateBody,
          response: { 200: Job, ...errors(400, 404, 409, 413, 415) },
        },
      },
      async (request) => jobs.update(request.params.job_id, request.body),
    );

    app.post(
      '/api/v1/jobs/:job_id/retry-bad-areas',
      {
        config: { permission: 'jobs:write' },
        schema: {
          tags: ['jobs'],
          summary: 'Read the bad areas of a completed job again',
          description:
            'For a job completed with errors (outcome with_errors): queues it again; the run continues from the rescue map, reads only the unreadable sectors with more attempts, and updates the archive entry. The image keeps every sector already read. The same disc must be in the drive.',
          params: JobParams,
          body: Type.Optional(RetryBadAreasBody),
          response: { 200: Job, ...errors(400, 404, 409, 413, 415) },
        },
      },
      async (request) => jobs.retryBadAreas(request.params.job_id, request.body?.read_attempts),
    );

    app.get(
      '/api/v1/jobs/:job_id/map',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['jobs'],
          summary: "A job's rescue map",
          description:
            'GNU ddrescue mapfile format: finished (+) and unreadable (-) areas, among others. 404 before reading started or after it was discarded.',
          params: JobParams,
          response: { 200: Type.String({ description: 'text/plain mapfile' }), ...errors(400, 404) },
        },
      },
      async (request, reply) => reply.type('text/plain; charset=utf-8').send(await jobs.rescueMap(request.params.job_id)),
    );

    app.delete(
      '/api/v1/jobs/:job_id',
      {
        config: { permission: 'jobs:write', audit: { event_type: 'job', action: 'delete' } },
        schema: {
          tags: ['jobs'],
          summary: 'Cancel and remove a job',
          description: 'A running job is cancelled first. The image of a completed job stays in the archive.',
          params: JobParams,
          response: { 204: Type.Null({ description: 'Removed' }), ...errors(400, 404, 409) },
        },
      },
      async (request, reply) => {
        await jobs.remove(request.params.job_id);
        return reply.status(204).send(null);
      },
    );

    app.get(
      '/api/v1/jobs/:job_id/logs',
      {
        config: { permission: 'jobs:read' },
        schema: {
          tags: ['jobs'],
          summary: "A job's log",
          description: 'Oldest first, at most 1000 lines. To follow a log, pass the last id you have as after_id.',
          params: JobParams,
          querystring: Type.Object({ after_id: Type.Optional(Type.Integer({ minimum: 0 })) }, { additionalProperties: false }),
          response: {
            200: Type.Object({ job_id: JobId, logs: Type.Array(JobLogLine) }, { additionalProperties: false }),
            ...errors(400, 404),
          },
        },
      },
      async (request) => {
        const lines = await jobs.logs(request.params.job_id, request.query.after_id);
        return { job_id: request.params.job_id, logs: lines.map((line) => ({ id: line.id, at: line.at, level: line.level, message: line.message })) };
      },
    );
  };
}
