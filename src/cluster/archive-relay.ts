import type { ArchiveFiles } from '../archive/files.js';
import { type ArchivePlacement, readsImageOf } from '../archive/placement.js';
import { ERROR_CODES, type ErrorCode } from '../error-codes.js';
import { ConflictError, type DomainError, NotFoundError, UnavailableError, ValidationError } from '../errors.js';
import type { CallNode, NodeCall } from './node-calls.js';

/**
 * A web instance's way to another node's images when the output folder is not shared: which node
 * holds an archive's image, and its internal routes (src/http/routes/internal.ts) called signed.
 */
export interface ArchiveRelay {
  /** The node to ask for an archive's image; null when this node reads it itself (or the archive is unknown, which the local answer says). */
  remoteHolder(archiveId: string): Promise<string | null>;
  /** A signed call to a node's internal routes. */
  call(node: string, call: NodeCall): Promise<Response>;
}

interface ArchiveRelayDeps {
  placement: ArchivePlacement;
  /** The node an archive records (archives.node_id); undefined for an unknown archive. */
  holderOf(archiveId: string): Promise<string | null | undefined>;
  callNode: CallNode;
}

export function createArchiveRelay(deps: ArchiveRelayDeps): ArchiveRelay {
  return {
    async remoteHolder(archiveId) {
      const holder = await deps.holderOf(archiveId);
      return holder === undefined || holder === null || readsImageOf(deps.placement, holder) ? null : holder;
    },
    call: deps.callNode,
  };
}

/** The internal route of an archive's image, or of `what` inside it, with the path in the image as its query. */
export function internalArchivePath(archiveId: string, what: 'image' | 'files' | 'files/content' | 'files/archive', pathInImage?: string): string {
  const base = `/internal/v1/archives/${encodeURIComponent(archiveId)}/${what}`;
  return pathInImage === undefined ? base : `${base}?path=${encodeURIComponent(pathInImage)}`;
}

function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && (ERROR_CODES as readonly string[]).includes(code);
}

/** The node's refusal as the same error here (not found, a corrupt image), so the user sees what the node said. */
async function nodeError(node: string, response: Response): Promise<DomainError> {
  const body = (await response.json().catch(() => null)) as { error?: { code?: unknown; message?: unknown } } | null;
  const code = body?.error?.code;
  const message = typeof body?.error?.message === 'string' ? body.error.message : `node ${node} answered ${response.status}`;
  if (isErrorCode(code)) {
    if (response.status === 404) return new NotFoundError(code, message, { node });
    if (response.status === 409) return new ConflictError(code, message, { node });
    if (response.status === 400) return new ValidationError(code, message, { node });
  }
  return new UnavailableError('node_unreachable', `node ${node} answered ${response.status}: ${message}`, { node });
}

/** The archive files of this node, with the folders of another node's images listed by that node. */
export function relayedArchiveFiles(files: ArchiveFiles, relay: ArchiveRelay): ArchiveFiles {
  return {
    ...files,
    async list(archiveId, path) {
      const node = await relay.remoteHolder(archiveId);
      if (node === null) return files.list(archiveId, path);
      const response = await relay.call(node, { method: 'GET', path: internalArchivePath(archiveId, 'files', path) });
      if (response.status !== 200) throw await nodeError(node, response);
      return (await response.json()) as Awaited<ReturnType<ArchiveFiles['list']>>;
    },
  };
}
