/**
 * Domain errors. Services throw these; one HTTP error handler and one CLI handler map them to
 * status codes and exit codes, so no service knows about either.
 */
import type { ErrorCode } from './error-codes.js';

export type ErrorDetails = Record<string, unknown> | Array<Record<string, unknown>> | undefined;

export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(message);
    this.name = new.target.name;
    this.code = code;
    this.details = details;
  }
}

export class ValidationError extends DomainError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
  }
}

export class NotFoundError extends DomainError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
  }
}

export class ConflictError extends DomainError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
  }
}

export class ForbiddenError extends DomainError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
  }
}

/** No credentials, or credentials that do not hold (401). */
export class UnauthenticatedError extends DomainError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
  }
}

/** Too many requests (429); the client may try again after `retryAfterSeconds`. */
export class TooManyRequestsError extends DomainError {
  readonly retryAfterSeconds: number;

  constructor(code: ErrorCode, message: string, retryAfterSeconds: number) {
    super(code, message, { retry_after_seconds: Math.ceil(retryAfterSeconds) });
    this.retryAfterSeconds = Math.ceil(retryAfterSeconds);
  }
}

/** A condition outside our control (device gone, disk full) that the user can fix and retry. */
export class UnavailableError extends DomainError {
  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(code, message, details);
  }
}

export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The errno code of a Node system error (`ENOENT`, `EIO`, …), or undefined for other values. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
