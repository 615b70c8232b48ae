import Type from 'typebox';
import type { AdoptionService } from '../../archive/adopt.js';
import { MAINTENANCE_KINDS, MAINTENANCE_STATUSES, type MaintenanceTaskView } from '../../archive/maintenance-task.js';
import { REDUNDANCY, type RecoveryService } from '../../archive/recovery.js';
import type { App } from '../app.js';
import { principalOf } from '../guard.js';
import { ArchiveId, Limit, Offset, errors } from '../schemas.js';

const TASKS_PATH = '/api/v1/archives/maintenance-tasks';
const MaintenanceTaskId = Type.String({ pattern: '^task_[a-z0-9]{1,64}$', description: 'Maintenance task id, e.g. task_3f9c…' });

const MaintenanceTask = Type.Object(
  {
    id: MaintenanceTaskId,
    kind: Type.Enum([...MAINTENANCE_KINDS], { description: 'par2_create, par2_repair (followed by a verification), adopt (a folder of images)' }),
    archive_id: Type.Union([ArchiveId, Type.Null()]),
    status: Type.Enum([...MAINTENANCE_STATUSES]),
    progress: Type.Number({ minimum: 0, maximum: 100 }),
    params: Type.Record(Type.String(), Type.Unknown()),
    result: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()], { description: 'What it did (adopt: adopted, skipped and failed files)' }),
    requested_by: Type.Union([Type.String(), Type.Null()]),
    cancel_requested: Type.Boolean(),
    attempts: Type.Integer(),
    error: Type.Union([Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }), Type.Null()]),
    created_at: Type.String({ format: 'date-time' }),
    updated_at: Type.String({ format: 'date-time' }),
    started_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    finished_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { additionalProperties: false, description: 'Recovery work or an adoption, run in the background one at a time' },
);
const Queued = Type.Object({ task: MaintenanceTask }, { additionalProperties: false, description: 'Queued' });
const ArchiveParams = Type.Object({ archive_id: ArchiveId }, { additionalProperties: false });
const TaskParams = Type.Object({ task_id: MaintenanceTaskId }, { additionalProperties: false });

/** Recovery data (PAR2), repair, and adopting a folder of existing images. */
export function archiveIntegrityRoutes(services: { recovery: RecoveryService; adoption: AdoptionService; defaultRedundancy: () => number }) {
  const { recovery, adoption } = services;
  const location = (task: MaintenanceTaskView) => `${TASKS_PATH}/${task.id}`;

  return (app: App): void => {
    app.post(
      '/api/v1/archives/:archive_id/recovery',
      {
        config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'create_recovery' } },
        schema: {
          tags: ['archives'],
          summary: 'Create PAR2 recovery data for the image, in the background',
          description:
            'Runs Debian’s par2 as a maintenance task; the data goes into a folder beside the image (NAME.iso.recovery) and replaces what was there only once complete. Without redundancy_percent, archive.recovery_redundancy_percent applies (10 when that is 0).',
          params: ArchiveParams,
          body: Type.Object(
            { redundancy_percent: Type.Optional(Type.Integer({ ...REDUNDANCY, description: 'How much of the image the data can restore, in percent' })) },
            { additionalProperties: false },
          ),
          response: { 202: Queued, ...errors(400, 404, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const task = await recovery.create(
          request.params.archive_id,
          request.body.redundancy_percent ?? services.defaultRedundancy(),
          principalOf(request).name,
        );
        return reply.status(202).header('location', location(task)).send({ task });
      },
    );

    app.post(
      '/api/v1/archives/:archive_id/repair',
      {
        config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'repair' } },
        schema: {
          tags: ['archives'],
          summary: 'Repair the image from its PAR2 recovery data, then verify it',
          description:
            'Rewrites damaged parts of the image in the background (par2 repair); when done, a verification of origin `repair` is queued and its outcome sets the archive’s status. 404 `recovery_not_found` without recovery data; 409 `archive_busy` while the image is being verified.',
          params: ArchiveParams,
          response: { 202: Queued, ...errors(400, 404, 409) },
        },
      },
      async (request, reply) => {
        const task = await recovery.repair(request.params.archive_id, principalOf(request).name);
        return reply.status(202).header('location', location(task)).send({ task });
      },
    );

    app.post(
      '/api/v1/archives/adopt',
      {
        config: { permission: 'system:write', audit: { event_type: 'archive', action: 'adopt' } },
        schema: {
          tags: ['archives'],
          summary: 'Adopt a folder of existing images into the archive, in the background',
          description:
            'Every .iso file directly in the folder that is a regular file (symlinks are skipped) and not archived yet is hashed (MD5, SHA-256), checked against .md5/.sha256 files beside it (written when missing), described from its volume descriptors and added. The folder must lie inside the output directory or one of archive.adopt_roots (resolved through symlinks): 400 `adopt_path_refused` otherwise.',
          body: Type.Object({ folder: Type.String({ minLength: 1, maxLength: 4096 }) }, { additionalProperties: false }),
          response: { 202: Queued, ...errors(400, 404, 409, 413, 415) },
        },
      },
      async (request, reply) => {
        const task = await adoption.start(request.body.folder, principalOf(request).name);
        return reply.status(202).header('location', location(task)).send({ task });
      },
    );

    app.get(
      TASKS_PATH,
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'Recovery and adoption tasks, newest first',
          querystring: Type.Object(
            { archive_id: Type.Optional(ArchiveId), limit: Type.Optional(Limit(50, 500)), offset: Type.Optional(Offset) },
            { additionalProperties: false },
          ),
          response: {
            200: Type.Object(
              { tasks: Type.Array(MaintenanceTask), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() },
              { additionalProperties: false },
            ),
            ...errors(400),
          },
        },
      },
      async (request) =>
        recovery.tasks({
          ...(request.query.archive_id === undefined ? {} : { archiveId: request.query.archive_id }),
          limit: request.query.limit ?? 50,
          offset: request.query.offset ?? 0,
        }),
    );

    app.get(
      `${TASKS_PATH}/:task_id`,
      {
        config: { permission: 'archives:read' },
        schema: { tags: ['archives'], summary: 'A recovery or adoption task', params: TaskParams, response: { 200: MaintenanceTask, ...errors(400, 404) } },
      },
      async (request) => recovery.task(request.params.task_id),
    );

    app.delete(
      `${TASKS_PATH}/:task_id`,
      {
        config: { permission: 'archives:write' },
        schema: {
          tags: ['archives'],
          summary: 'Cancel a recovery or adoption task',
          description: 'A queued task is cancelled at once, a running one within moments (par2 is stopped; data being created is discarded).',
          params: TaskParams,
          response: { 200: MaintenanceTask, ...errors(400, 404) },
        },
      },
      async (request) => recovery.cancel(request.params.task_id),
    );
  };
}
