import { localPath, withParams } from './request.js';

/** Pages a sign-in must never lead back to: they would only send the user on again (or sign them out). */
const NOT_AFTER_SIGN_IN = /^\/(?:login|logout|setup)(?:[/?]|$)/;

/** Where to go after signing in or changing the password: `next` when it is a page of this site, else the dashboard. */
export function destination(next: string | undefined): string {
  const path = localPath(next, '/');
  return NOT_AFTER_SIGN_IN.test(path) ? '/' : path;
}

/** `/login?next=…`; the next page is left out when it is the dashboard, where a sign-in goes anyway. */
export function loginPath(next: string, notice?: string): string {
  return withParams('/login', { next: next === '/' ? undefined : next, notice });
}

export interface LoginForm {
  /** The page to go on to after signing in. */
  next: string;
  /** What the user typed, shown again after a failure (never the password). */
  username: string;
  /** Why the last attempt failed, translated; null for a fresh form. */
  problem: string | null;
}

/** The login template's data; the sign-in page and the page error handler both render it. */
export function loginView(form: LoginForm): Record<string, unknown> {
  return { title: 'auth.login.title', next: form.next, username: form.username, problem: form.problem };
}
