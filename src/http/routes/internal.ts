import type { FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { ArchiveFiles } from '../../archive/files.js';
import type { ArchiveService } from '../../archive/service.js';
import type { Clock } from '../../clock.js';
import { checkCall } from '../../cluster/node-calls.js';
import { NotFoundError } from '../../errors.js';
import type { App, RouteModule } from '../app.js';
import { sendImage } from '../download.js';
import { ArchiveId } from '../schemas.js';
import { sendImageFile, sendTar } from './archive-files.js';

export interface InternalRouteDeps {
  /** This node's name: a call must be signed for it. */
  node: string;
  /** cluster.secret, read at each call. */
  secret: () => string;
  clock: Clock;
  /** The node an archive records (archives.node_id); undefined for an unknown archive. */
  holderOf(archiveId: string): Promise<string | null | undefined>;
  archives: Pick<ArchiveService, 'openFile'>;
  files: Pick<ArchiveFiles, 'list' | 'openFile' | 'openFolderTar'>;
}

const ArchiveParams = Type.Object({ archive_id: ArchiveId }, { additionalProperties: false });
const PathQuery = Type.Object(
  { path: Type.Optional(Type.String({ maxLength: 4096, pattern: '^[^\\u0000-\\u001f\\u007f]*$', default: '' })) },
  { additionalProperties: false },
);
const RangeHeaders = Type.Object({ range: Type.Optional(Type.String({ maxLength: 200 })) });

/**
 * What a node holding images on its own disk serves the other nodes of its cluster (a web instance
 * streaming a download or a folder listing to its user): an archive's image, a folder listing and
 * the files inside the image, by archive id only, and only of archives this node holds. Every call
 * must carry a signature made with cluster.secret for this node (src/cluster/node-calls.ts); the
 * routes exist only while the secret is set. No user credentials count here, and the routes are
 * no part of the API (hidden from its documentation).
 */
export function internalRoutes(deps: InternalRouteDeps): RouteModule {
  const config = {
    permission: 'public' as const,
    nodeSignature: (request: FastifyRequest) => checkCall(deps.secret(), deps.node, request, deps.clock()),
  };
  /** Another node's archive, or one of none, is not this node's to serve, whatever its own disk holds at that path. */
  const held = async (archiveId: string): Promise<string> => {
    if ((await deps.holderOf(archiveId)) !== deps.node) {
      throw new NotFoundError('archive_not_found', `node ${deps.node} holds no archive ${archiveId}`, { archive_id: archiveId });
    }
    return archiveId;
  };

  return (app: App): void => {
    app.route({
      method: ['GET', 'HEAD'],
      url: '/internal/v1/archives/:archive_id/image',
      config,
      schema: { hide: true, params: ArchiveParams, headers: RangeHeaders },
      handler: async (request, reply) => sendImage(request, reply, await deps.archives.openFile(await held(request.params.archive_id))),
    });
    app.get('/internal/v1/archives/:archive_id/files', { config, schema: { hide: true, params: ArchiveParams, querystring: PathQuery } }, async (request) =>
      deps.files.list(await held(request.params.archive_id), request.query.path ?? ''),
    );
    app.route({
      method: ['GET', 'HEAD'],
      url: '/internal/v1/archives/:archive_id/files/content',
      config,
      schema: { hide: true, params: ArchiveParams, querystring: PathQuery, headers: RangeHeaders },
      handler: async (request, reply) =>
        sendImageFile(request, reply, await deps.files.openFile(await held(request.params.archive_id), request.query.path ?? '')),
    });
    app.get(
      '/internal/v1/archives/:archive_id/files/archive',
      { config, schema: { hide: true, params: ArchiveParams, querystring: PathQuery } },
      async (request, reply) => sendTar(reply, await deps.files.openFolderTar(await held(request.params.archive_id), request.query.path ?? '')),
    );
  };
}
