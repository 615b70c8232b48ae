import { extname } from 'node:path';
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import Type from 'typebox';
import type { ArchiveFiles, OpenedImageFile } from '../../archive/files.js';
import { type ArchiveRelay, internalArchivePath } from '../../cluster/archive-relay.js';
import type { App } from '../app.js';
import { contentDisposition, parseRange } from '../download.js';
import { relayFromNode } from '../relay.js';
import { ArchiveId, Limit, errors } from '../schemas.js';

/** A path inside an image: printable, bounded; the reader refuses `.`, `..` and anything it cannot find. */
const ImagePath = Type.String({
  maxLength: 4096,
  pattern: '^[^\\u0000-\\u001f\\u007f]*$',
  default: '',
  description: 'Path inside the image, `/`-separated (empty or `/` for the root)',
});
const ArchiveParams = Type.Object({ archive_id: ArchiveId }, { additionalProperties: false });
const PathQuery = Type.Object({ path: Type.Optional(ImagePath) }, { additionalProperties: false });

const FileEntry = Type.Object(
  {
    name: Type.String(),
    type: Type.Enum(['file', 'directory']),
    size: Type.Integer({ description: 'Bytes; 0 for a folder' }),
    mtime: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { additionalProperties: false },
);
const Listing = Type.Object(
  {
    archive_id: Type.String(),
    path: Type.String(),
    file_system: Type.String({ description: 'rockridge, joliet, iso9660 or udf: whose names are shown' }),
    entries: Type.Array(FileEntry),
  },
  { additionalProperties: false },
);
const SearchResult = Type.Object(
  {
    archive_id: Type.String(),
    archive_filename: Type.String(),
    archive_label: Type.Union([Type.String(), Type.Null()]),
    path: Type.String(),
    name: Type.String(),
    type: Type.Enum(['file', 'directory']),
    size: Type.Integer(),
    mtime: Type.Union([Type.String(), Type.Null()]),
    link: Type.String({ description: 'The file’s download (or the folder’s listing)' }),
  },
  { additionalProperties: false },
);

/** Types by extension; anything else is a download of bytes. Pages never render these: see sendImageFile. */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.log': 'text/plain; charset=utf-8',
  '.nfo': 'text/plain; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.xml': 'application/xml',
  '.json': 'application/json',
  '.pdf': 'application/pdf',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.png': 'image/png',
  '.gif': 'image/gif',
  '.bmp': 'image/bmp',
  '.webp': 'image/webp',
  '.svg': 'image/svg+xml',
  '.mp3': 'audio/mpeg',
  '.flac': 'audio/flac',
  '.ogg': 'audio/ogg',
  '.wav': 'audio/wav',
  '.mp4': 'video/mp4',
  '.mkv': 'video/x-matroska',
  '.avi': 'video/x-msvideo',
  '.vob': 'video/mpeg',
  '.m2ts': 'video/mp2t',
  '.zip': 'application/zip',
  '.gz': 'application/gzip',
  '.tar': 'application/x-tar',
  '.iso': 'application/x-iso9660-image',
  '.exe': 'application/vnd.microsoft.portable-executable',
};

function contentTypeOf(name: string): string {
  return CONTENT_TYPES[extname(name).toLowerCase()] ?? 'application/octet-stream';
}

/**
 * One file of an image: one byte range, ETag, HEAD. Always an attachment, sandboxed and not
 * sniffed: an HTML or SVG file from a disc must never run as a page of this service.
 */
export function sendImageFile(request: FastifyRequest, reply: FastifyReply, file: OpenedImageFile): FastifyReply {
  reply
    .header('accept-ranges', 'bytes')
    .header('etag', file.etag)
    .header('cache-control', 'private, no-cache')
    .header('content-disposition', contentDisposition(file.name))
    .header('content-security-policy', "default-src 'none'; sandbox")
    .header('x-content-type-options', 'nosniff');
  if (file.mtime !== null) reply.header('last-modified', file.mtime.toUTCString());
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch?.split(',').some((tag) => tag.trim() === file.etag || tag.trim() === '*')) {
    void file.close();
    return reply.status(304).send();
  }
  const ifRange = request.headers['if-range'];
  const range = ifRange === undefined || ifRange === file.etag ? parseRange(request.headers.range, file.size) : ({ kind: 'full' } as const);
  if (range.kind === 'unsatisfiable') {
    void file.close();
    return reply
      .status(416)
      .header('content-range', `bytes */${file.size}`)
      .send({ error: { code: 'range_not_satisfiable', message: `the file is ${file.size} bytes long`, details: { size_bytes: file.size } } });
  }
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : file.size - 1;
  reply.type(contentTypeOf(file.name)).header('content-length', String(end - start + 1));
  if (range.kind === 'partial') reply.status(206).header('content-range', `bytes ${start}-${end}/${file.size}`);
  if (request.method === 'HEAD' || file.size === 0) {
    void file.close();
    return reply.send();
  }
  const stream = file.stream(start, end);
  stream.once('close', () => void file.close());
  return reply.send(stream);
}

export function sendTar(reply: FastifyReply, tar: { name: string; stream: Readable }): FastifyReply {
  return reply
    .type('application/x-tar')
    .header('content-disposition', contentDisposition(tar.name))
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'private, no-cache')
    .send(tar.stream);
}

/** `relay`: in a cluster, how images on another node's disk are reached (absent: every image is read here). */
export function archiveFileRoutes(files: ArchiveFiles, relay?: ArchiveRelay) {
  return (app: App): void => {
    app.get(
      '/api/v1/archives/files/search',
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'Search the files inside archived images by name',
          description:
            'Every word must occur (as a word or the start of one) in the file’s name or path; best matches first (bm25 on SQLite, ts_rank in the cluster mode’s PostgreSQL; the name counting more than the folders on both). Images are indexed in the background after archiving, so a new archive’s files appear shortly after it.',
          querystring: Type.Object({ q: Type.String({ minLength: 1, maxLength: 200 }), limit: Type.Optional(Limit(50, 200)) }, { additionalProperties: false }),
          response: { 200: Type.Object({ query: Type.String(), results: Type.Array(SearchResult) }, { additionalProperties: false }), ...errors(400) },
        },
      },
      async (request) => files.search(request.query.q, request.query.limit ?? 50),
    );

    app.get(
      '/api/v1/archives/:archive_id/files',
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'List a folder inside the image',
          description:
            'Reads the image’s file system (ISO 9660 with Rock Ridge or Joliet names, or UDF) without mounting it. Folders first, then files, by name. 409 `image_corrupt`, `image_format_unsupported` or `image_limit_exceeded` for an image that cannot be read safely.',
          params: ArchiveParams,
          querystring: PathQuery,
          response: { 200: Listing, ...errors(400, 404, 409, 503) },
        },
      },
      async (request) => files.list(request.params.archive_id, request.query.path ?? ''),
    );

    app.route({
      method: ['GET', 'HEAD'],
      url: '/api/v1/archives/:archive_id/files/content',
      config: { permission: 'archives:read', audit: { event_type: 'archive', action: 'file_download' } },
      schema: {
        tags: ['archives'],
        summary: 'Download one file from inside the image',
        description:
          'Streams the file; one byte range (206, or 416 past the end), ETag with If-None-Match and If-Range. Content-Type by extension; always an attachment (RFC 6266 `filename*` with an ASCII fallback).',
        params: ArchiveParams,
        querystring: PathQuery,
        headers: Type.Object({ range: Type.Optional(Type.String({ maxLength: 200 })) }),
        response: {
          200: Type.String({ description: 'The file' }),
          206: Type.String({ description: 'The requested range' }),
          304: Type.Null({ description: 'Not modified' }),
          ...errors(400, 404, 409, 416, 503),
        },
      },
      handler: async (request, reply) => {
        const path = request.query.path ?? '';
        request.auditDetails = request.method === 'HEAD' ? null : { path };
        const id = request.params.archive_id;
        const node = relay === undefined ? null : await relay.remoteHolder(id);
        if (relay !== undefined && node !== null) return relayFromNode(request, reply, relay, node, internalArchivePath(id, 'files/content', path));
        return sendImageFile(request, reply, await files.openFile(id, path));
      },
    });

    app.get(
      '/api/v1/archives/:archive_id/files/archive',
      {
        config: { permission: 'archives:read', audit: { event_type: 'archive', action: 'folder_download' } },
        schema: {
          tags: ['archives'],
          summary: 'Download a folder from inside the image as tar',
          description: 'A POSIX tar of the folder and everything below it, streamed as it is read (no size known in advance, no ranges).',
          params: ArchiveParams,
          querystring: PathQuery,
          response: { 200: Type.String({ description: 'application/x-tar' }), ...errors(400, 404, 409, 503) },
        },
      },
      async (request, reply) => {
        const path = request.query.path ?? '';
        request.auditDetails = { path };
        const id = request.params.archive_id;
        const node = relay === undefined ? null : await relay.remoteHolder(id);
        if (relay !== undefined && node !== null) return relayFromNode(request, reply, relay, node, internalArchivePath(id, 'files/archive', path));
        return sendTar(reply, await files.openFolderTar(id, path));
      },
    );
  };
}
