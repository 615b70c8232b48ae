import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack } from 'tar-stream';
import { type Clock, systemClock } from '../clock.js';
import type { FileIndexRepository, FileSearchHit, IndexedEntry, SearchTerm } from '../db/file-index-repository.js';
import { DomainError, ValidationError, errorMessage } from '../errors.js';
import type { JsonObject } from '../json.js';
import { type ImageTree, listImageEntries, openImage } from '../media/image-reader.js';
import type { ArchiveFile } from './service.js';

/**
 * Looking inside archived images: list a folder, stream one file or a folder as tar, and the
 * file-name index (filled in the background, searched by its full-text index). Every path is resolved inside
 * the image's own tree by the reader; nothing here touches the host file system but the image.
 */

interface ImageFileView {
  name: string;
  type: 'file' | 'directory';
  size: number;
  mtime: string | null;
}

interface FolderListing {
  archive_id: string;
  /** The folder's path inside the image, normalised: no leading or trailing slash; `''` is the root. */
  path: string;
  file_system: string;
  entries: ImageFileView[];
}

/** A file inside an image, open for streaming; `close` releases the image (also after an error). */
export interface OpenedImageFile {
  name: string;
  size: number;
  mtime: Date | null;
  etag: string;
  stream(start: number, end: number): Readable;
  close(): Promise<void>;
}

interface FileSearchResult {
  archive_id: string;
  archive_filename: string;
  archive_label: string | null;
  path: string;
  name: string;
  type: 'file' | 'directory';
  size: number;
  mtime: string | null;
  /** Where the file downloads (GET, with Range), or for a folder its listing. */
  link: string;
}

export interface ArchiveFiles {
  list(archiveId: string, path: string): Promise<FolderListing>;
  openFile(archiveId: string, path: string): Promise<OpenedImageFile>;
  /** A folder's files as a tar stream, read one at a time as the client takes them. */
  openFolderTar(archiveId: string, path: string): Promise<{ name: string; stream: Readable }>;
  search(query: string, limit: number): Promise<{ query: string; results: FileSearchResult[] }>;
}

export interface FileIndexer {
  /** Starts the background loop: indexes archives without an index, now and whenever woken. */
  start(): void;
  /** Something was archived: look for unindexed archives soon. */
  wake(): void;
  stop(): Promise<void>;
}

interface ArchiveFilesDeps {
  /** The image of an archive, confined to the output directory (the archive service's openFile). */
  openArchiveImage(archiveId: string): Promise<ArchiveFile>;
  index: FileIndexRepository;
}

/** Normalises a request's path: `/a//b/` becomes `a/b`. The reader checks each name. */
function normalisePath(path: string): string {
  return path
    .split('/')
    .filter((name) => name !== '')
    .join('/');
}

/**
 * Runs of letters and digits become terms, all required, so no query syntax reaches the index.
 * Words of three characters or more match as prefixes (on SQLite served by the index's prefix
 * tables); shorter ones only as whole words, as a one-letter prefix would expand to half the vocabulary.
 */
const MAX_SEARCH_TERMS = 8;
const MIN_PREFIX = 3;
function fileSearchTerms(query: string): SearchTerm[] {
  const words = query.match(/[\p{L}\p{N}]+/gu) ?? [];
  if (words.length === 0) throw new ValidationError('validation_failed', 'the search needs at least one letter or digit', { fields: ['q'] });
  return words.slice(0, MAX_SEARCH_TERMS).map((word) => ({ text: word, prefix: word.length >= MIN_PREFIX }));
}

function encodePath(path: string): string {
  return encodeURIComponent(path).replace(/%2F/g, '/');
}

function toResult(hit: FileSearchHit): FileSearchResult {
  const base = `/api/v1/archives/${hit.archiveId}/files`;
  return {
    archive_id: hit.archiveId,
    archive_filename: hit.archiveFilename,
    archive_label: hit.archiveLabel,
    path: hit.path,
    name: hit.name,
    type: hit.kind,
    size: hit.sizeBytes,
    mtime: hit.mtime,
    link: hit.kind === 'file' ? `${base}/content?path=${encodePath(hit.path)}` : `${base}?path=${encodePath(hit.path)}`,
  };
}

export function createArchiveFiles(deps: ArchiveFilesDeps): ArchiveFiles {
  const withImage = async <T>(archiveId: string, work: (tree: ImageTree, image: ArchiveFile) => Promise<T>): Promise<T> => {
    const image = await deps.openArchiveImage(archiveId);
    const tree = await openImage(image.path);
    try {
      return await work(tree, image);
    } finally {
      await tree.close();
    }
  };

  return {
    async list(archiveId, path) {
      const normalised = normalisePath(path);
      return withImage(archiveId, async (tree) => {
        const nodes = await tree.list(normalised);
        return {
          archive_id: archiveId,
          path: normalised,
          file_system: tree.fileSystem,
          entries: nodes.map((node) => ({ name: node.name, type: node.kind, size: node.kind === 'file' ? node.size : 0, mtime: node.mtime })),
        };
      });
    },

    async openFile(archiveId, path) {
      const normalised = normalisePath(path);
      const image = await deps.openArchiveImage(archiveId);
      const tree = await openImage(image.path);
      try {
        const node = await tree.resolve(normalised);
        if (node.kind !== 'file') throw new ValidationError('image_not_a_file', `not a file: ${normalised}`, { path: normalised });
        const mtime = node.mtime === null ? null : new Date(node.mtime);
        return {
          name: node.name,
          size: node.size,
          mtime,
          // The image's own tag and the path: a re-imaged archive or another file never matches.
          etag: `"${image.etag.slice(1, -1)}-${Buffer.from(normalised).toString('base64url').slice(0, 64)}"`,
          stream: (start, end) => tree.stream(node, start, end),
          close: () => tree.close(),
        };
      } catch (error) {
        await tree.close();
        throw error;
      }
    },

    async openFolderTar(archiveId, path) {
      const normalised = normalisePath(path);
      const image = await deps.openArchiveImage(archiveId);
      const tree = await openImage(image.path);
      let top;
      try {
        top = await tree.resolve(normalised);
        if (top.kind !== 'directory') throw new ValidationError('image_not_a_directory', `not a folder: ${normalised}`, { path: normalised });
      } catch (error) {
        await tree.close();
        throw error;
      }
      const base = normalised === '' ? image.filename.replace(/\.[^.]*$/u, '') || 'image' : top.name;
      const tar = tarPack();
      const fill = async (): Promise<void> => {
        const skip = normalised === '' ? 0 : normalised.length + 1;
        for await (const entry of tree.walk(normalised)) {
          const name = `${base}/${entry.path.slice(skip)}`;
          const mtime = entry.mtime === null ? new Date(0) : new Date(entry.mtime);
          if (entry.kind === 'directory') {
            tar.entry({ name, type: 'directory', mtime, mode: 0o755 });
            continue;
          }
          const sink = tar.entry({ name, type: 'file', size: entry.size, mtime, mode: 0o644 });
          // pipeline waits for the entry to take each piece: the image is read no faster than the client downloads.
          await pipeline(tree.stream(entry.node), sink);
        }
        tar.finalize();
      };
      fill()
        .catch((error: unknown) => tar.destroy(error instanceof Error ? error : new Error(errorMessage(error))))
        .finally(() => void tree.close());
      // tar-stream's streams are streamx ones; Node's Readable (with backpressure) is what HTTP replies take.
      return { name: `${base}.tar`, stream: Readable.from(tar) };
    },

    async search(query, limit) {
      const hits = await deps.index.search(fileSearchTerms(query), limit);
      return { query, results: hits.map(toResult) };
    },
  };
}

/** Entries are written in batches of this many, each its own short transaction. */
const INDEX_BATCH = 2000;
/** Archives added by another process (the CLI, an adopted folder) are found within this long. */
const IDLE_POLL_MS = 5_000;

interface FileIndexerDeps {
  index: FileIndexRepository;
  openArchiveImage(archiveId: string): Promise<ArchiveFile>;
  onEvent?: (level: 'info' | 'warning', message: string, details: JsonObject) => void;
  now?: Clock;
  /** In a cluster without a shared output folder, this node: it indexes only the images on its own disk (ownImagesOf). */
  node?: string | null;
}

/**
 * Indexes archived images one at a time, outside any request: new archives (woken by the
 * archiving) and, at start, every archive indexed before (the backfill). Reading an image awaits
 * between folders and writes in short batches, so neither the event loop nor the database's
 * write lock is held for long. An image that cannot be read is recorded as failed, not retried.
 */
export function createFileIndexer(deps: FileIndexerDeps): FileIndexer {
  const now = deps.now ?? systemClock;
  let stopped = true;
  let wakeUp: (() => void) | null = null;
  let loop: Promise<void> | null = null;
  const abort = new AbortController();

  const indexOne = async (archive: { id: string; path: string }): Promise<void> => {
    await deps.index.clear(archive.id);
    let count = 0;
    try {
      const image = await deps.openArchiveImage(archive.id);
      let batch: IndexedEntry[] = [];
      for await (const entry of listImageEntries(image.path, abort.signal)) {
        batch.push({ path: entry.path, name: entry.name, kind: entry.kind, sizeBytes: entry.kind === 'file' ? entry.size : 0, mtime: entry.mtime });
        if (batch.length >= INDEX_BATCH) {
          await deps.index.add(archive.id, batch);
          count += batch.length;
          batch = [];
        }
      }
      await deps.index.add(archive.id, batch);
      count += batch.length;
      await deps.index.finish(archive.id, { status: 'indexed', entries: count }, now().toISOString());
      deps.onEvent?.('info', `indexed ${count} files and folders of archive ${archive.id}`, { archive_id: archive.id, entries: count });
    } catch (error) {
      if (abort.signal.aborted) return;
      const code = error instanceof DomainError ? error.code : 'internal_error';
      await deps.index.finish(archive.id, { status: 'failed', entries: count, code, message: errorMessage(error) }, now().toISOString());
      deps.onEvent?.('warning', `cannot index archive ${archive.id}: ${errorMessage(error)}`, { archive_id: archive.id, code });
    }
  };

  const run = async (): Promise<void> => {
    while (!stopped) {
      const pending = await deps.index.unindexed(10, deps.node ?? null);
      for (const archive of pending) {
        if (stopped) return;
        await indexOne(archive);
      }
      if (pending.length > 0) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, IDLE_POLL_MS);
        timer.unref();
        wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wakeUp = null;
    }
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      loop = run().catch((error: unknown) => deps.onEvent?.('warning', `the file indexer stopped: ${errorMessage(error)}`, {}));
    },
    wake() {
      wakeUp?.();
    },
    async stop() {
      stopped = true;
      abort.abort();
      wakeUp?.();
      await loop;
    },
  };
}
