import { createReadStream } from 'node:fs';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ArchiveFile } from '../archive/service.js';

/**
 * What a Range header asks of a file of a given size (RFC 9110 section 14).
 */
export type RangeRequest = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Single byte ranges only: `bytes=a-b`, `bytes=a-`, `bytes=-n`. A header we do not understand, or
 * one with several ranges, is ignored (the whole file is sent), which the RFC allows; a
 * well-formed range that lies wholly past the end is unsatisfiable.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'full' };
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match) return { kind: 'full' };
  const [, first = '', last = ''] = match;
  if (first === '' && last === '') return { kind: 'full' };
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  if (!Number.isSafeInteger(start) || start >= size) return { kind: 'unsatisfiable' };
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (end < start) return { kind: 'full' };
  return { kind: 'partial', start, end };
}

/**
 * `attachment; filename="…"; filename*=UTF-8''…`: an ASCII fallback every client takes, and the real name (RFC 6266, RFC 5987).
 */
export function contentDisposition(filename: string): string {
  const ascii =
    filename
      .replace(/[^\x20-\x7e]/g, '_')
      .replace(/["\\]/g, '_')
      .replace(/[/;]/g, '_') || 'download.iso';
  const encoded = encodeURIComponent(filename).replace(/['()*]/g, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encoded}`;
}

function etagMatches(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  return header.split(',').some((candidate) => {
    const tag = candidate.trim();
    return tag === '*' || tag === etag || tag === `W/${etag}`;
  });
}

/**
 * Answers GET and HEAD for an image: conditional requests (If-None-Match, If-Modified-Since,
 * If-Range), one byte range, and the file streamed from disk, never held in memory.
 */
export function sendImage(request: FastifyRequest, reply: FastifyReply, file: ArchiveFile): FastifyReply {
  const lastModified = new Date(Math.floor(file.modifiedAt.getTime() / 1000) * 1000);
  reply
    .header('accept-ranges', 'bytes')
    .header('etag', file.etag)
    .header('last-modified', lastModified.toUTCString())
    .header('cache-control', 'private, no-cache')
    .header('content-disposition', contentDisposition(file.filename))
    .header('x-content-type-options', 'nosniff');

  const ifNoneMatch = request.headers['if-none-match'];
  const ifModifiedSince = request.headers['if-modified-since'];
  const notModified =
    ifNoneMatch !== undefined
      ? etagMatches(ifNoneMatch, file.etag)
      : ifModifiedSince !== undefined && !Number.isNaN(Date.parse(ifModifiedSince)) && lastModified.getTime() <= Date.parse(ifModifiedSince);
  if (notModified) return reply.status(304).send();

  const ifRange = request.headers['if-range'];
  const rangeStillValid = ifRange === undefined || ifRange === file.etag || ifRange === lastModified.toUTCString();
  const range = rangeStillValid ? parseRange(request.headers.range, file.sizeBytes) : ({ kind: 'full' } as const);

  if (range.kind === 'unsatisfiable') {
    return reply
      .status(416)
      .header('content-range', `bytes */${file.sizeBytes}`)
      .send({ error: { code: 'range_not_satisfiable', message: `the image is ${file.sizeBytes} bytes long`, details: { size_bytes: file.sizeBytes } } });
  }
  const start = range.kind === 'partial' ? range.start : 0;
  const end = range.kind === 'partial' ? range.end : file.sizeBytes - 1;
  reply.type('application/octet-stream').header('content-length', String(end - start + 1));
  if (range.kind === 'partial') reply.status(206).header('content-range', `bytes ${start}-${end}/${file.sizeBytes}`);
  if (request.method === 'HEAD' || file.sizeBytes === 0) return reply.send();
  return reply.send(createReadStream(file.path, { start, end, highWaterMark: 1024 * 1024 }));
}
