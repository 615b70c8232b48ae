import { join } from 'node:path';
import fastifyFormbody from '@fastify/formbody';
import fastifyStatic from '@fastify/static';
import type { App } from '../http/app.js';
import { createPageErrorHandler } from './errors.js';
import { registerAccountPages } from './pages/account.js';
import { registerAccountNotificationPages } from './pages/account-notifications.js';
import { registerArchivePages } from './pages/archive.js';
import { registerArchiveIntegrityPages } from './pages/archive-integrity.js';
import { registerAuthPages } from './pages/auth.js';
import { registerConfigPages } from './pages/config.js';
import { registerDashboard } from './pages/dashboard.js';
import { registerDrivePages } from './pages/drives.js';
import { registerJobPages } from './pages/jobs.js';
import { registerLanguageSwitch } from './pages/language.js';
import { registerPwaRoutes } from './pages/pwa.js';
import { createThemeLoader, registerThemeSwitch } from './pages/theme.js';
import { registerUserPages } from './pages/users.js';
import { webRoot } from './paths.js';
import type { WebDeps } from './types.js';

export { renderNotFoundPage } from './errors.js';
export type { WebDeps } from './types.js';

/**
 * The web interface: pages, the fragments their scripts fetch, form actions and browser assets.
 * Register it in its own plugin scope (buildApp does); the static files, the form body parser and
 * the page error handler it registers stay inside that scope. Unknown URLs are answered at the
 * root of the app: pass renderNotFoundPage to buildApp as its pageNotFound.
 */
export async function registerWebRoutes(app: App, deps: WebDeps): Promise<void> {
  // Stylesheets and scripts declare no permission: every page (the sign-in page too) loads them,
  // so they are neither authenticated nor counted against the rate limit.
  await app.register(fastifyStatic, { root: join(webRoot(), 'static'), prefix: '/static/', decorateReply: false, index: false, list: false });
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(fastifyFormbody);

  const loadTheme = createThemeLoader(deps);
  const pageErrors = createPageErrorHandler(deps.security, loadTheme);
  app.setErrorHandler(pageErrors);
  registerAuthPages(app, deps, deps.accounts, pageErrors);
  registerLanguageSwitch(app);
  registerThemeSwitch(app, deps, loadTheme);
  registerPwaRoutes(app);
  registerDashboard(app, deps);
  registerJobPages(app, deps);
  registerDrivePages(app, deps);
  registerArchiveIntegrityPages(app, deps, deps.integrity);
  registerArchivePages(app, deps);
  registerConfigPages(app, deps);
  registerAccountPages(app, deps, deps.accounts);
  registerAccountNotificationPages(app, deps);
  registerUserPages(app, deps, deps.accounts);
}
