import Type from 'typebox';
import { ARCHIVE_STATUSES, type ArchiveStatus as ArchiveStatusValue } from '../../archive/model.js';
import type { ArchiveService } from '../../archive/service.js';
import { VERIFICATION_TASK_STATUSES, type VerificationTaskStatus, type VerificationTaskView } from '../../archive/verification-task.js';
import { type ArchiveRelay, internalArchivePath } from '../../cluster/archive-relay.js';
import { DISC_KINDS, type DiscKind as DiscKindValue } from '../../drives/types.js';
import { ValidationError } from '../../errors.js';
import type { App } from '../app.js';
import { sendImage } from '../download.js';
import { principalOf } from '../guard.js';
import { relayFromNode } from '../relay.js';
import { Archive, ArchiveId, Limit, Offset, SortOrder, Verification, VerificationTask, VerificationTaskId, errors } from '../schemas.js';
import { MetadataPatch, metadataPatchOf } from './catalogue.js';

const listOf = (values: readonly string[]) => `^(${values.join('|')})(,(${values.join('|')}))*$`;

/** A day (inclusive) or an exact moment. */
const DateOrTime = Type.Union([Type.String({ format: 'date' }), Type.String({ format: 'date-time' })]);
const Search = Type.String({ maxLength: 200, description: 'Words that must all occur in the filename, label, notes or tags' });

const ListQuery = Type.Object(
  {
    q: Type.Optional(Search),
    search: Type.Optional(Search),
    from: Type.Optional(DateOrTime),
    to: Type.Optional(DateOrTime),
    min_size: Type.Optional(Type.Integer({ minimum: 0 })),
    max_size: Type.Optional(Type.Integer({ minimum: 0 })),
    type: Type.Optional(Type.String({ pattern: listOf(DISC_KINDS), description: `Disc kind, or a comma-separated list: ${DISC_KINDS.join(', ')}` })),
    status: Type.Optional(
      Type.String({ pattern: listOf(ARCHIVE_STATUSES), description: `One status or a comma-separated list: ${ARCHIVE_STATUSES.join(', ')}` }),
    ),
    sort: Type.Optional(Type.Enum(['name', 'date', 'size'], { default: 'date' })),
    order: Type.Optional(SortOrder),
    limit: Type.Optional(Limit(50, 500)),
    offset: Type.Optional(Offset),
  },
  { additionalProperties: false },
);

const MetadataBody = Type.Object({ metadata: MetadataPatch }, { additionalProperties: false });

const ArchiveParams = Type.Object({ archive_id: ArchiveId }, { additionalProperties: false });
const TaskParams = Type.Object({ task_id: VerificationTaskId }, { additionalProperties: false });

const TASKS_PATH = '/api/v1/archives/verification-tasks';
/** Bulk verification by id names at most this many archives; `all` takes every one. */
const MAX_BULK_IDS = 500;
const Links = Type.Object(
  {
    task: Type.String({ description: 'Where the task’s progress and outcome can be read (GET) and where it is cancelled (DELETE)' }),
    events: Type.String({ description: 'The live stream carrying archive_verification_update messages' }),
  },
  { additionalProperties: false },
);
const linksOf = (task: VerificationTaskView) => ({ task: `${TASKS_PATH}/${task.id}`, events: '/api/v1/events' });
const Refused = Type.Object(
  {
    archive_id: Type.String(),
    error: Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);

const VERIFY_DESCRIPTION =
  'Re-hashing runs in the background, so the answer comes at once, however large the image: follow the task at the `Location` (or `links.task`), or live as `archive_verification_update` messages on /api/v1/events and /api/v1/ws/jobs. Tasks run one at a time, oldest first, and survive a restart (a restarted one re-hashes from the beginning). When done, the outcome — compared with the sidecar files and with the checksums recorded when the disc was read — is added to the verification history and sets the archive’s status.';

/** `2025-12-31` as the end of a range means the whole day. */
function rangeEnd(value: string): Date {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(Date.parse(`${value}T00:00:00Z`) + 86_400_000 - 1) : new Date(value);
}

function rangeStart(value: string): Date {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) ? new Date(`${value}T00:00:00Z`) : new Date(value);
}

/** `relay`: in a cluster, how images on another node's disk are reached (absent: every image is read here). */
export function archiveRoutes(archives: ArchiveService, relay?: ArchiveRelay) {
  return (app: App): void => {
    app.get(
      '/api/v1/archives',
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'List and search finished images',
          querystring: ListQuery,
          response: {
            200: Type.Object(
              { archives: Type.Array(Archive), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() },
              { additionalProperties: false },
            ),
            ...errors(400),
          },
        },
      },
      async (request) => {
        const query = request.query;
        return archives.list({
          search: query.q ?? query.search,
          from: query.from === undefined ? undefined : rangeStart(query.from),
          to: query.to === undefined ? undefined : rangeEnd(query.to),
          minSizeBytes: query.min_size,
          maxSizeBytes: query.max_size,
          discKinds: query.type?.split(',') as DiscKindValue[] | undefined,
          statuses: query.status?.split(',') as ArchiveStatusValue[] | undefined,
          sort: query.sort,
          order: query.order,
          limit: query.limit ?? 50,
          offset: query.offset ?? 0,
        });
      },
    );

    app.get(
      '/api/v1/archives/:archive_id',
      {
        config: { permission: 'archives:read' },
        schema: { tags: ['archives'], summary: 'Get an archive', params: ArchiveParams, response: { 200: Archive, ...errors(400, 404) } },
      },
      async (request) => archives.get(request.params.archive_id),
    );

    app.patch(
      '/api/v1/archives/:archive_id',
      {
        config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'edit' } },
        schema: {
          tags: ['archives'],
          summary: "Edit an archive's label, tags, notes, category, rating or custom fields",
          description:
            'Fields left out stay as they are; null clears the category or rating. Tags are normalised (trimmed, inner spacing collapsed, lower-cased) and de-duplicated; custom fields replace the old ones as a whole. 400 `unknown_category` for a category that does not exist.',
          params: ArchiveParams,
          body: MetadataBody,
          response: { 200: Archive, ...errors(400, 404, 413, 415) },
        },
      },
      async (request) => archives.updateMetadata(request.params.archive_id, metadataPatchOf(request.body.metadata)),
    );

    app.delete(
      '/api/v1/archives/:archive_id',
      {
        config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'delete' } },
        schema: {
          tags: ['archives'],
          summary: 'Delete an archive and its files',
          description: 'Removes the image with its .md5, .sha1, .sha256, .json and .map files (only inside the output directory), then the record.',
          params: ArchiveParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...errors(400, 404, 409) },
        },
      },
      async (request, reply) => {
        await archives.remove(request.params.archive_id);
        return reply.status(204).send(null);
      },
    );

    // GET and HEAD in one route: Fastify's generated HEAD route would replace our Content-Length with 0.
    app.route({
      method: ['GET', 'HEAD'],
      url: '/api/v1/archives/:archive_id/download',
      config: { permission: 'archives:read' },
      schema: {
        tags: ['archives'],
        summary: 'Download the image',
        description:
          'Streams the image. Supports HEAD, one byte range (`Range: bytes=a-b`, `bytes=a-`, `bytes=-n`; 206, or 416 when it lies past the end), ETag with If-None-Match (304), If-Modified-Since and If-Range. In a cluster whose output folder is not shared, an image on another node’s disk is streamed from that node; 503 `node_offline` or `node_unreachable` (naming the node in `details.node`) when it cannot answer.',
        params: ArchiveParams,
        headers: Type.Object({ range: Type.Optional(Type.String({ maxLength: 200 })) }),
        response: {
          200: Type.String({ description: 'The image (application/octet-stream)' }),
          206: Type.String({ description: 'The requested range' }),
          304: Type.Null({ description: 'Not modified' }),
          ...errors(400, 404, 409, 416, 503),
        },
      },
      handler: async (request, reply) => {
        const id = request.params.archive_id;
        const node = relay === undefined ? null : await relay.remoteHolder(id);
        if (relay !== undefined && node !== null) return relayFromNode(request, reply, relay, node, internalArchivePath(id, 'image'));
        return sendImage(request, reply, await archives.openFile(id));
      },
    });

    app.post(
      '/api/v1/archives/:archive_id/verify',
      {
        config: { permission: 'archives:write' },
        schema: {
          tags: ['archives'],
          summary: 'Re-hash the image in the background and compare it with its checksums',
          description: `${VERIFY_DESCRIPTION} 404 \`archive_file_missing\` when the image is gone, 409 \`verification_running\` while the archive already has a queued or running task.`,
          params: ArchiveParams,
          response: {
            202: Type.Object({ task: VerificationTask, links: Links }, { additionalProperties: false, description: 'Queued' }),
            ...errors(400, 404, 409),
          },
        },
      },
      async (request, reply) => {
        const task = await archives.startVerification(request.params.archive_id, principalOf(request).name);
        const links = linksOf(task);
        return reply.status(202).header('location', links.task).send({ task, links });
      },
    );

    app.post(
      '/api/v1/archives/verify',
      {
        config: { permission: 'archives:write' },
        schema: {
          tags: ['archives'],
          summary: 'Re-hash many images in the background',
          description: `Queues one task per archive: those named in \`ids\` (at most ${MAX_BULK_IDS}), or every archive with \`{"all": true}\`. Archives that cannot be queued (unknown, image missing, outside the output directory, already being verified) are listed in \`refused\` with the error each would have got alone. ${VERIFY_DESCRIPTION}`,
          body: Type.Object(
            {
              ids: Type.Optional(Type.Array(ArchiveId, { minItems: 1, maxItems: MAX_BULK_IDS })),
              all: Type.Optional(Type.Literal(true)),
            },
            { additionalProperties: false, description: 'Either ids or all' },
          ),
          response: {
            202: Type.Object({ tasks: Type.Array(VerificationTask), refused: Type.Array(Refused) }, { additionalProperties: false, description: 'Queued' }),
            ...errors(400, 413, 415),
          },
        },
      },
      async (request, reply) => {
        const { ids, all } = request.body;
        if ((ids === undefined) === (all === undefined))
          throw new ValidationError('validation_failed', 'give either ids or "all": true', { fields: ['ids', 'all'] });
        const selection = ids === undefined ? { all: true as const } : { ids };
        return reply.status(202).send(await archives.startVerifications(selection, principalOf(request).name));
      },
    );

    app.get(
      TASKS_PATH,
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'Verification tasks, newest first',
          description: 'Finished tasks are kept for storage.log_retention_days; the verification history keeps their outcome for good.',
          querystring: Type.Object(
            {
              archive_id: Type.Optional(ArchiveId),
              status: Type.Optional(
                Type.String({
                  pattern: listOf(VERIFICATION_TASK_STATUSES),
                  description: `One status or a comma-separated list: ${VERIFICATION_TASK_STATUSES.join(', ')}`,
                }),
              ),
              limit: Type.Optional(Limit(50, 500)),
              offset: Type.Optional(Offset),
            },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object(
              { tasks: Type.Array(VerificationTask), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() },
              { additionalProperties: false },
            ),
            ...errors(400),
          },
        },
      },
      async (request) =>
        archives.verificationTasks({
          archiveId: request.query.archive_id,
          statuses: request.query.status?.split(',') as VerificationTaskStatus[] | undefined,
          limit: request.query.limit ?? 50,
          offset: request.query.offset ?? 0,
        }),
    );

    app.get(
      `${TASKS_PATH}/:task_id`,
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'A verification task: its progress, or how it ended',
          params: TaskParams,
          response: { 200: VerificationTask, ...errors(400, 404) },
        },
      },
      async (request) => archives.verificationTask(request.params.task_id),
    );

    app.delete(
      `${TASKS_PATH}/:task_id`,
      {
        config: { permission: 'archives:write' },
        schema: {
          tags: ['archives'],
          summary: 'Cancel a verification task',
          description:
            'A queued task is cancelled at once; a running one gets `cancel_requested` and stops within moments (its status then turns cancelled, and nothing is added to the history). A finished task is returned as it is.',
          params: TaskParams,
          response: { 200: VerificationTask, ...errors(400, 404) },
        },
      },
      async (request) => archives.cancelVerification(request.params.task_id),
    );

    app.get(
      '/api/v1/archives/:archive_id/verifications',
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'Verification history, newest first',
          params: ArchiveParams,
          querystring: Type.Object({ limit: Type.Optional(Limit(50, 500)), offset: Type.Optional(Offset) }, { additionalProperties: false }),
          response: {
            200: Type.Object(
              { verifications: Type.Array(Verification), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() },
              { additionalProperties: false },
            ),
            ...errors(400, 404),
          },
        },
      },
      async (request) => archives.verifications(request.params.archive_id, { limit: request.query.limit ?? 50, offset: request.query.offset ?? 0 }),
    );
  };
}
