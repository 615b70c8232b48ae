import { randomBytes } from 'node:crypto';
import { ValidationError } from '../errors.js';

/** Helpers every repository shares: ids, timestamps, JSON columns, paging. */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export type Clock = () => Date;
export const systemClock: Clock = () => new Date();

/** ISO 8601 UTC with milliseconds and 'Z': one fixed width, so stored timestamps compare as text. */
export function timestamp(date: Date): string {
  return date.toISOString();
}

/** `job_3f9c…`: a prefix saying what it names, then 80 random bits in hex. */
export function newId(prefix: 'job' | 'archive' | 'verify'): string {
  return `${prefix}_${randomBytes(10).toString('hex')}`;
}

export function toJson(value: JsonValue | object): string {
  return JSON.stringify(value);
}

/** Parses a JSON column this layer wrote; the caller states the shape it stored there. */
export function fromJson<T>(text: string): T {
  return JSON.parse(text) as T;
}

export interface ListResult<T> {
  items: T[];
  total: number;
}

export interface Page {
  limit: number;
  offset: number;
}

export const DEFAULT_LIMIT = 50;

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
