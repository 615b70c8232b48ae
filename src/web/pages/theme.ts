import type { FastifyRequest } from 'fastify';
import { ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { formFields } from '../request.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import { THEMES, THEME_PREFERENCE, isTheme, storedTheme } from '../theme.js';
import type { WebDeps } from '../types.js';

/** Reads the signed-in user's colour scheme into the request (once), for the page that answers it. */
export type ThemeLoader = (request: FastifyRequest) => Promise<void>;

export function createThemeLoader(deps: Pick<WebDeps, 'preferences' | 'security'>): ThemeLoader {
  return async (request) => {
    const user = deps.security.currentUser(request);
    if (user !== null && request.theme === undefined) request.theme = storedTheme(await deps.preferences.get(user.name, THEME_PREFERENCE));
  };
}

/**
 * The colour scheme: read for every request of a signed-in user before its page renders (the
 * layout sets it on <html>, so the first paint has the right colours), chosen with a small form
 * in the page header that works without JavaScript.
 */
export function registerThemeSwitch(app: App, deps: WebDeps, loadTheme: ThemeLoader): void {
  const { preferences, security } = deps;
  app.decorateRequest('theme', undefined);
  app.addHook('preHandler', loadTheme);

  app.post('/theme', { config: { permission: 'authenticated' } }, async (request, reply) => {
    const theme = formFields(request.body).one('theme');
    const returnTo = returnPath(request, '/');
    if (!isTheme(theme)) return actionFailed(request, reply, new ValidationError('validation_failed', `the theme is one of ${THEMES.join(', ')}`), returnTo);
    await preferences.set(security.user(request).name, THEME_PREFERENCE, theme);
    request.theme = theme;
    return actionDone(request, reply, 'theme_saved', returnTo);
  });
}
