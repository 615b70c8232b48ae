import fastifyFormbody from '@fastify/formbody';
import fastifyStatic from '@fastify/static';
import fastifyView from '@fastify/view';
import { Eta } from 'eta';
import type { RouteOptions } from 'fastify';
import type { App } from '../http/app.js';
import { join } from 'node:path';
import { installPageErrorHandler } from './errors.js';
import { registerAccountPages } from './pages/account.js';
import { registerArchivePages } from './pages/archive.js';
import { registerConfigPages } from './pages/config.js';
import { registerDashboard } from './pages/dashboard.js';
import { registerDrivePages } from './pages/drives.js';
import { registerJobPages } from './pages/jobs.js';
import { registerLanguageSwitch } from './pages/language.js';
import { registerUserPages } from './pages/users.js';
import { webRoot } from './paths.js';
import type { WebDeps } from './types.js';

export type { WebDeps } from './types.js';

const STATIC_PREFIX = '/static/';

/**
 * The web interface: pages, the fragments their scripts fetch, form actions and browser assets.
 * Register it in its own plugin scope (buildApp does); the view engine, static files and the form
 * body parser it registers stay inside that scope.
 */
export async function registerWebRoutes(app: App, deps: WebDeps): Promise<void> {
  const root = webRoot();
  const templates = join(root, 'templates');
  // Stylesheets and scripts are needed before anyone is signed in (the login page uses them).
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.url.startsWith(STATIC_PREFIX)) route.config = { ...(route.config as object), permission: 'public' };
  });
  await app.register(fastifyView, {
    engine: { eta: new Eta({ views: templates, cache: true, autoEscape: true }) },
    templates,
    // Templates ship with the code: compile each once.
    production: true,
  });
  await app.register(fastifyStatic, { root: join(root, 'static'), prefix: STATIC_PREFIX, decorateReply: false, index: false, list: false });
  if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(fastifyFormbody);

  installPageErrorHandler(app, deps.security);
  registerLanguageSwitch(app);
  registerDashboard(app, deps);
  registerJobPages(app, deps);
  registerDrivePages(app, deps);
  registerArchivePages(app, deps);
  registerConfigPages(app, deps);
  if (deps.accounts) {
    registerAccountPages(app, deps, deps.accounts);
    registerUserPages(app, deps, deps.accounts);
  }
}
