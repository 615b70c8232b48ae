import type { FastifyRequest } from 'fastify';

/**
 * Reading what forms and links send. Forms arrive as application/x-www-form-urlencoded, where a
 * field can repeat (checkbox groups) and anything can be missing or hostile.
 */
export interface FormFields {
  /** The first value of a field, trimmed; undefined when absent. */
  one(name: string): string | undefined;
  /** Every value of a field (checkbox groups, multi-selects). */
  all(name: string): string[];
  has(name: string): boolean;
}

export function formFields(source: unknown): FormFields {
  const record = typeof source === 'object' && source !== null ? (source as Record<string, unknown>) : {};
  const all = (name: string): string[] => {
    const value = Object.hasOwn(record, name) ? record[name] : undefined;
    if (typeof value === 'string') return [value];
    if (Array.isArray(value)) return value.filter((item): item is string => typeof item === 'string');
    return [];
  };
  return {
    one: (name) => all(name)[0]?.trim(),
    all,
    has: (name) => all(name).length > 0,
  };
}

/** The origin same-site paths are resolved against; `.invalid` can never be a real host. */
const LOCAL_ORIGIN = 'http://local.invalid';

/**
 * The URL a value names when it is an absolute path of this site, before normalising; null for
 * anything a browser could read as another site: `//evil`, `/\evil` (browsers take a backslash
 * for a slash), a scheme, or control characters (browsers drop tabs and newlines, `/\t/evil` is `//evil`).
 */
function resolveOnThisSite(value: string): URL | null {
  if (!value.startsWith('/') || value.startsWith('//') || /[\\\u0000-\u001f\u007f]/.test(value)) return null;
  const url = new URL(value, LOCAL_ORIGIN);
  return url.origin === LOCAL_ORIGIN ? url : null;
}

/**
 * The normalised path and query of a value when it stays on this site, as a Location header may
 * carry it; null otherwise. The check is repeated on the result, because normalising can make what
 * the raw value hid: `/.//evil`, `/..//evil` and `/%2e%2e//evil` all become `//evil`, another host.
 */
function sameSitePath(value: string): string | null {
  const url = resolveOnThisSite(value);
  if (url === null) return null;
  const path = `${url.pathname}${url.search}`;
  const again = resolveOnThisSite(path);
  return again !== null && `${again.pathname}${again.search}` === path ? path : null;
}

/**
 * A path on this site to go to next (after a form, a sign-in, a password change), or the fallback.
 * Every redirect to a target from a request goes through here, so no crafted value can send a user elsewhere.
 */
export function localPath(value: string | undefined, fallback: string): string {
  return (value === undefined ? null : sameSitePath(value)) ?? fallback;
}

/** The path with these query parameters set (and the one-shot notice and error removed); the dashboard when the path is no page of this site. */
export function withParams(path: string, params: Record<string, string | undefined>): string {
  const url = resolveOnThisSite(path);
  if (url === null) return '/';
  url.searchParams.delete('notice');
  url.searchParams.delete('error');
  url.searchParams.delete('notice_job');
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) url.searchParams.delete(key);
    else url.searchParams.set(key, value);
  }
  return localPath(`${url.pathname}${url.search}`, '/');
}

/** Inline actions (fetch from the page's script) ask for JSON; plain forms get HTML and redirects. */
export function wantsJson(request: FastifyRequest): boolean {
  const accept = request.headers.accept ?? '';
  return accept.includes('application/json') && !accept.includes('text/html');
}

/**
 * True for a request a page's script made (fetch), as opposed to the browser loading a page or
 * sending a form: it asks for JSON, or the browser says it is no navigation (Sec-Fetch-Mode).
 * Clients that send no Sec-Fetch-Mode are taken for a browser loading a page.
 */
export function isScriptRequest(request: FastifyRequest): boolean {
  if (wantsJson(request)) return true;
  const mode = request.headers['sec-fetch-mode'];
  return typeof mode === 'string' && mode !== 'navigate';
}

/** The current page's path and query, for forms that should come back to it. */
export function currentPath(request: FastifyRequest): string {
  return localPath(request.url, '/');
}
