import { randomBytes } from 'node:crypto';
import { ValidationError } from '../errors.js';
import type { JsonValue } from '../json.js';

/** Helpers every repository shares: ids, timestamps, JSON columns, paging. */

/** ISO 8601 UTC with milliseconds and 'Z': one fixed width, so stored timestamps compare as text. */
export function timestamp(date: Date): string {
  return date.toISOString();
}

/** `job_3f9c…`: a prefix saying what it names, then 80 random bits in hex. */
export function newId(prefix: 'job' | 'archive' | 'verify' | 'category' | 'task'): string {
  return `${prefix}_${randomBytes(10).toString('hex')}`;
}

export function toJson(value: JsonValue | object): string {
  return JSON.stringify(value);
}

/**
 * The value with every NUL character removed from its strings (object keys too). Names read from a
 * disc (a volume label, a file name) may carry one; PostgreSQL refuses it in text and in JSON, and
 * it means nothing in a name, so it is dropped before storing on either engine.
 */
export function withoutNul<T>(value: T): T {
  if (typeof value === 'string') return value.replaceAll('\u0000', '') as T;
  if (Array.isArray(value)) return value.map(withoutNul) as T;
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [withoutNul(key), withoutNul(item)])) as T;
  return value;
}

/** Parses a JSON column this layer wrote; the caller states the shape it stored there. */
export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

/** Parses a JSON column whose shape the caller checks next; text that is no JSON at all throws `invalid()`. */
export function parseJson(text: string, invalid: () => Error): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw invalid();
  }
}

/**
 * A stored value without the shape its column promises: the row was changed outside the service, or
 * by a broken version. Names the row and the column, so the row can be found and repaired; reading
 * it fails instead of handing on a value nothing checked.
 */
export class CorruptRowError extends Error {
  constructor(kind: string, id: string, column: string, problem: string) {
    super(`${kind} ${id}: the stored ${column} are invalid: ${problem}`);
    this.name = 'CorruptRowError';
  }
}

export interface ListResult<T> {
  items: T[];
  total: number;
}

export interface Page {
  limit: number;
  offset: number;
}

const DEFAULT_LIMIT = 50;

export function page(limit: number | undefined, offset: number | undefined): Page {
  const checked = { limit: limit ?? DEFAULT_LIMIT, offset: offset ?? 0 };
  for (const [name, value] of Object.entries(checked)) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new ValidationError('validation_failed', `${name} must be a non-negative integer`, { [name]: value });
    }
  }
  return checked;
}

export type SortOrder = 'asc' | 'desc';
