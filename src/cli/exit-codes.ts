import { ConflictError, DomainError, NotFoundError, ValidationError } from '../errors.js';

/** Exit codes shared by every command, documented in the README. */
export const EXIT = {
  ok: 0,
  /** The operation ran and failed: checksum mismatch, device gone, disk full (resumable). */
  failed: 1,
  /** It could not run: bad input, unknown device, a name already taken, a missing file. */
  invalid: 2,
  /** Interrupted (Ctrl-C) and paused safely; running the same command again resumes. */
  paused: 3,
  /** The image is complete but some sectors could not be read (see its .map). */
  damaged: 4,
} as const;

export function exitCodeFor(error: unknown): number {
  if (error instanceof ValidationError || error instanceof NotFoundError || error instanceof ConflictError) return EXIT.invalid;
  return EXIT.failed;
}

/**
 * One line a person can act on for the errors we expect; the stack for anything else, since that is a
 * bug and the stack is what a bug report needs.
 */
export function describeError(error: unknown): string {
  if (error instanceof DomainError) return `disk2iso: ${error.message}`;
  if (error instanceof Error) return `disk2iso: ${error.stack ?? error.message}`;
  return `disk2iso: ${String(error)}`;
}
