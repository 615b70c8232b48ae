import { type FileHandle, open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { ErrorCode } from '../error-codes.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';

/**
 * The common ground of the image readers (ISO 9660 and UDF): what a file or directory inside an
 * image is, the bounds every reader keeps, and positional reads that never leave the image.
 * Images are untrusted input (an adopted folder of ISOs, a disc someone handed over), so every
 * number read from one is checked before it sizes a buffer or positions a read.
 */

/** Where a file's bytes are: a run of the image, zeros (UDF sparse extents), or bytes stored in the entry itself. */
export type ImageExtent = { kind: 'data'; position: number; length: number } | { kind: 'zeros'; length: number } | { kind: 'inline'; bytes: Buffer };

export interface ImageNode {
  name: string;
  kind: 'file' | 'directory';
  size: number;
  /** ISO 8601, or null when the image records none that makes sense. */
  mtime: string | null;
  extents: ImageExtent[];
  /** Identifies a directory's data inside the image, so a directory that contains itself is noticed. */
  key: string;
}

/** One file system's view of an image: its root and how to read a directory. */
export interface ImageFileSystem {
  kind: 'iso9660' | 'joliet' | 'rockridge' | 'udf';
  root: ImageNode;
  /** The directory's valid entries; names are already checked by `isSafeName`. */
  children(directory: ImageNode): Promise<ImageNode[]>;
}

export const IMAGE_LIMITS = {
  /** Deeper trees are refused: no real disc needs more, and a bound keeps a walk finite. */
  maxDepth: 64,
  maxEntriesPerDirectory: 100_000,
  maxEntriesPerImage: 2_000_000,
  /** A directory's records (ISO) or identifiers (UDF) are read whole; beyond this the image is refused. */
  maxDirectoryBytes: 32 * 1024 * 1024,
  /** Folder records one walk may read in all: overlapping folders could otherwise make a small image cost terabytes of reads. */
  maxDirectoryBytesPerWalk: 1024 * 1024 * 1024,
  /** Extents of one file; a 4 GiB ISO 9660 section each, so 64 cover a 256 GiB file. */
  maxExtentsPerFile: 4096,
  maxNameBytes: 1024,
  /** A request's path inside an image. */
  maxPathLength: 4096,
} as const;

/** Positional reads are made in pieces of at most this many bytes, so no read allocates more. */
const READ_CHUNK_BYTES = 256 * 1024;

export class ImageFormatError extends ConflictError {}

export function corrupt(message: string, details?: Record<string, unknown>): ImageFormatError {
  return new ImageFormatError('image_corrupt', message, details);
}

export function unsupported(message: string, details?: Record<string, unknown>): ImageFormatError {
  return new ImageFormatError('image_format_unsupported', message, details);
}

export function limitExceeded(message: string, details?: Record<string, unknown>): ImageFormatError {
  return new ImageFormatError('image_limit_exceeded', message, details);
}

/**
 * Every code the reader throws: callers (and the fuzz test) treat anything else as a bug.
 * @internal exported for its tests
 */
export const IMAGE_ERROR_CODES: readonly ErrorCode[] = [
  'image_corrupt',
  'image_format_unsupported',
  'image_limit_exceeded',
  'image_path_invalid',
  'image_path_not_found',
  'image_not_a_directory',
  'image_not_a_file',
  'image_unreadable',
];

/**
 * A name that can be shown and put in a tar without meaning anything but itself: no separator,
 * no `.` or `..`, no NUL or control characters. Entries with other names are left out of listings,
 * so they can never be reached or extracted.
 */
export function isSafeName(name: string): boolean {
  if (name === '' || name === '.' || name === '..') return false;
  if (Buffer.byteLength(name) > IMAGE_LIMITS.maxNameBytes) return false;
  return !/[/\u0000-\u001f\u007f]/u.test(name);
}

/** Reads of an image file that stay inside it. */
export interface ImageSource {
  readonly size: number;
  /** Exactly `length` bytes at `position`, which must lie inside the image (else `image_corrupt`). */
  read(position: number, length: number, what: string): Promise<Buffer>;
  /** Checks that a run of bytes lies inside the image. */
  check(position: number, length: number, what: string): void;
}

function createImageSource(handle: FileHandle, size: number): ImageSource {
  const check = (position: number, length: number, what: string): void => {
    if (!Number.isSafeInteger(position) || !Number.isSafeInteger(length) || position < 0 || length < 0 || position + length > size) {
      throw corrupt(`${what} lies outside the image (bytes ${position}+${length} of ${size})`, { position, length, image_size: size });
    }
  };
  return {
    size,
    check,
    async read(position, length, what) {
      check(position, length, what);
      if (length > IMAGE_LIMITS.maxDirectoryBytes) throw limitExceeded(`${what} is ${length} bytes long`, { length });
      const buffer = Buffer.alloc(length);
      let filled = 0;
      while (filled < length) {
        const want = Math.min(READ_CHUNK_BYTES, length - filled);
        let bytesRead: number;
        try {
          ({ bytesRead } = await handle.read(buffer, filled, want, position + filled));
        } catch (error) {
          throw new ImageFormatError('image_unreadable', `cannot read ${what}: ${(error as Error).message}`);
        }
        if (bytesRead === 0) throw corrupt(`${what} ends early: the image is shorter than it says`);
        filled += bytesRead;
      }
      return buffer;
    },
  };
}

/** The concatenated bytes of a (directory) node, bounded. */
export async function readWhole(source: ImageSource, node: ImageNode, what: string): Promise<Buffer> {
  if (node.size > IMAGE_LIMITS.maxDirectoryBytes) throw limitExceeded(`${what} is ${node.size} bytes long`, { size: node.size });
  const parts: Buffer[] = [];
  for (const extent of node.extents) {
    if (extent.kind === 'data') parts.push(await source.read(extent.position, extent.length, what));
    else if (extent.kind === 'inline') parts.push(extent.bytes);
    else parts.push(Buffer.alloc(extent.length));
  }
  return Buffer.concat(parts);
}

/** Validates a node's extents against the image, and its size against theirs. */
export function checkExtents(source: ImageSource, node: ImageNode): ImageNode {
  if (node.extents.length > IMAGE_LIMITS.maxExtentsPerFile) throw limitExceeded(`${node.name} has ${node.extents.length} extents`);
  let total = 0;
  for (const extent of node.extents) {
    if (extent.kind === 'data') source.check(extent.position, extent.length, `the data of ${JSON.stringify(node.name)}`);
    total += extent.kind === 'inline' ? extent.bytes.length : extent.length;
  }
  // Sparse UDF extents cost nothing to describe; a file larger than its image is a lie that would stream zeros for ever.
  if (total !== node.size || node.size > source.size) {
    throw corrupt(`${JSON.stringify(node.name)} claims ${node.size} bytes in extents of ${total}`, { size: node.size, extents: total });
  }
  return node;
}

/** A path inside an image, split into names; refuses what could mean anything but a descent from the root. */
function splitImagePath(path: string): string[] {
  if (path.length > IMAGE_LIMITS.maxPathLength) throw new ValidationError('image_path_invalid', 'the path is too long', { max: IMAGE_LIMITS.maxPathLength });
  const names = path.split('/').filter((name) => name !== '');
  if (names.length > IMAGE_LIMITS.maxDepth) throw new ValidationError('image_path_invalid', 'the path is too deep', { max_depth: IMAGE_LIMITS.maxDepth });
  for (const name of names) {
    if (!isSafeName(name)) throw new ValidationError('image_path_invalid', `the path holds an invalid name: ${JSON.stringify(name)}`);
  }
  return names;
}

/** One entry of a walk: its path from the root (`a/b/c.txt`, no leading slash). */
export interface ImageEntry {
  path: string;
  name: string;
  kind: 'file' | 'directory';
  size: number;
  mtime: string | null;
}

/** An open image: look up paths, list directories, walk subtrees, stream files. Close it when done. */
export interface ImageTree {
  readonly fileSystem: ImageFileSystem['kind'];
  /** The node at a path (`''` or `/` is the root); NotFoundError `image_path_not_found`. */
  resolve(path: string): Promise<ImageNode>;
  /** A directory's entries, directories first, then by name. */
  list(path: string): Promise<ImageNode[]>;
  /** Every entry below a directory, depth first; a directory before its contents. */
  walk(path?: string, signal?: AbortSignal): AsyncGenerator<ImageEntry & { node: ImageNode }>;
  /** A file's bytes `start`..`end` (inclusive), read in bounded pieces as the consumer asks for them. */
  stream(node: ImageNode, start?: number, end?: number): Readable;
  close(): Promise<void>;
}

function byDirectoryThenName(left: ImageNode, right: ImageNode): number {
  if (left.kind !== right.kind) return left.kind === 'directory' ? -1 : 1;
  return left.name < right.name ? -1 : left.name > right.name ? 1 : 0;
}

async function* extentBytes(handle: FileHandle, size: number, node: ImageNode, start: number, end: number): AsyncGenerator<Buffer> {
  let offset = 0;
  for (const extent of node.extents) {
    const length = extent.kind === 'inline' ? extent.bytes.length : extent.length;
    const from = Math.max(start, offset);
    const to = Math.min(end + 1, offset + length);
    for (let at = from; at < to; ) {
      const piece = Math.min(READ_CHUNK_BYTES, to - at);
      const within = at - offset;
      if (extent.kind === 'inline') {
        yield extent.bytes.subarray(within, within + piece);
      } else if (extent.kind === 'zeros') {
        yield Buffer.alloc(piece);
      } else {
        const position = extent.position + within;
        // Checked when the node was built; checked again because a byte outside the image must never be served.
        if (position + piece > size) throw corrupt('a file extent lies outside the image');
        const buffer = Buffer.alloc(piece);
        let filled = 0;
        while (filled < piece) {
          const { bytesRead } = await handle.read(buffer, filled, piece - filled, position + filled);
          if (bytesRead === 0) throw corrupt('the image ended while reading a file');
          filled += bytesRead;
        }
        yield buffer;
      }
      at += piece;
    }
    offset += length;
    if (offset > end) break;
  }
}

function createImageTree(handle: FileHandle, source: ImageSource, fileSystem: ImageFileSystem): ImageTree {
  const resolve = async (path: string): Promise<ImageNode> => {
    let node = fileSystem.root;
    for (const name of splitImagePath(path)) {
      if (node.kind !== 'directory') throw new NotFoundError('image_path_not_found', `no such folder in the image: ${path}`, { path });
      const child = (await fileSystem.children(node)).find((candidate) => candidate.name === name);
      if (child === undefined) throw new NotFoundError('image_path_not_found', `no such file or folder in the image: ${path}`, { path });
      node = child;
    }
    return node;
  };

  return {
    fileSystem: fileSystem.kind,
    resolve,
    async list(path) {
      const node = await resolve(path);
      if (node.kind !== 'directory') throw new ValidationError('image_not_a_directory', `not a folder: ${path}`, { path });
      return [...(await fileSystem.children(node))].sort(byDirectoryThenName);
    },
    async *walk(path = '', signal) {
      const top = await resolve(path);
      if (top.kind !== 'directory') throw new ValidationError('image_not_a_directory', `not a folder: ${path}`, { path });
      const prefix = splitImagePath(path).join('/');
      const visited = new Set<string>([top.key]);
      const stack: Array<{ node: ImageNode; path: string; depth: number }> = [{ node: top, path: prefix, depth: splitImagePath(path).length }];
      let entries = 0;
      let directoryBytes = top.size;
      while (stack.length > 0) {
        signal?.throwIfAborted();
        const { node, path: directoryPath, depth } = stack.pop() as { node: ImageNode; path: string; depth: number };
        const children = [...(await fileSystem.children(node))].sort(byDirectoryThenName);
        const subdirectories: Array<{ node: ImageNode; path: string; depth: number }> = [];
        for (const child of children) {
          entries += 1;
          if (entries > IMAGE_LIMITS.maxEntriesPerImage) throw limitExceeded(`the image holds more than ${IMAGE_LIMITS.maxEntriesPerImage} entries`);
          const childPath = directoryPath === '' ? child.name : `${directoryPath}/${child.name}`;
          yield { path: childPath, name: child.name, kind: child.kind, size: child.size, mtime: child.mtime, node: child };
          if (child.kind === 'directory') {
            if (visited.has(child.key)) throw corrupt(`the folder ${childPath} contains itself`, { path: childPath });
            if (depth + 1 > IMAGE_LIMITS.maxDepth) throw limitExceeded(`folders nest deeper than ${IMAGE_LIMITS.maxDepth}`, { path: childPath });
            visited.add(child.key);
            directoryBytes += child.size;
            if (directoryBytes > IMAGE_LIMITS.maxDirectoryBytesPerWalk) throw limitExceeded('the folders of the image hold too many bytes of records');
            subdirectories.push({ node: child, path: childPath, depth: depth + 1 });
          }
        }
        // Reversed so the first folder by name is walked first.
        stack.push(...subdirectories.reverse());
      }
    },
    stream(node, start = 0, end = node.size - 1) {
      if (node.kind !== 'file') throw new ValidationError('image_not_a_file', `not a file: ${node.name}`);
      return Readable.from(extentBytes(handle, source.size, node, start, end), { objectMode: false });
    },
    close: () => handle.close(),
  };
}

type FileSystemOpener = (source: ImageSource) => Promise<ImageFileSystem | null>;

/**
 * Opens an image file and finds a file system the openers recognise, the first that does winning
 * unless it says its variant is unsupported and a later one can read the image (a UDF bridge disc
 * with an ISO 9660 tree). `image_format_unsupported` when none does.
 */
export async function openImageWith(imagePath: string, openers: readonly FileSystemOpener[]): Promise<ImageTree> {
  let handle: FileHandle;
  try {
    handle = await open(imagePath, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new NotFoundError('image_not_found', `image ${imagePath} does not exist`);
    throw new ImageFormatError('image_unreadable', `cannot open the image: ${(error as Error).message}`);
  }
  try {
    const info = await handle.stat();
    const source = createImageSource(handle, info.size);
    let refusal: ImageFormatError | null = null;
    for (const opener of openers) {
      try {
        const fileSystem = await opener(source);
        if (fileSystem !== null) return createImageTree(handle, source, fileSystem);
      } catch (error) {
        if (!(error instanceof ImageFormatError) || error.code !== 'image_format_unsupported') throw error;
        refusal ??= error;
      }
    }
    throw refusal ?? unsupported('the image holds neither an ISO 9660 nor a UDF file system');
  } catch (error) {
    await handle.close();
    throw error;
  }
}
