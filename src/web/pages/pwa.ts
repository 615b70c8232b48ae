import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { App } from '../../http/app.js';
import { LANGUAGES, type Language } from '../i18n.js';
import { webRoot } from '../paths.js';
import { renderStandalone } from '../render.js';

/**
 * The installable web app: its manifest, the service worker (at the root, so its scope is the
 * whole app) and the offline page the worker shows when the service cannot be reached. All three
 * are public and hold nothing private: the sign-in page needs them as much as the dashboard.
 */

/** The header's and the page's colours (static/css/app.css: .site-header, --bg). */
const THEME_COLOUR = '#17202e';
const BACKGROUND_COLOUR = '#f4f5f7';

const MANIFEST = {
  name: 'disk2iso',
  short_name: 'disk2iso',
  description: 'Bit-exact, verified archival images of optical discs',
  id: '/',
  start_url: '/',
  scope: '/',
  display: 'standalone',
  theme_color: THEME_COLOUR,
  background_color: BACKGROUND_COLOUR,
  icons: [
    { src: '/static/icons/icon-192.png', sizes: '192x192', type: 'image/png', purpose: 'any' },
    { src: '/static/icons/icon-512.png', sizes: '512x512', type: 'image/png', purpose: 'any' },
    { src: '/static/icons/icon-maskable-512.png', sizes: '512x512', type: 'image/png', purpose: 'maskable' },
    { src: '/static/favicon.svg', sizes: 'any', type: 'image/svg+xml', purpose: 'any' },
  ],
};

const offlinePath = (language: Language) => `/offline/${language}`;

/**
 * What the worker keeps: the stylesheet, every script, the icons, the manifest and the offline
 * pages. Exported so the tests can hold the browser's Cache Storage against it.
 * @internal exported for its tests
 */
export function shellFiles(): string[] {
  const staticRoot = join(webRoot(), 'static');
  const scripts = readdirSync(join(staticRoot, 'js')).filter((name) => name.endsWith('.js'));
  const icons = readdirSync(join(staticRoot, 'icons')).filter((name) => name.endsWith('.png'));
  return [
    '/static/css/app.css',
    ...scripts.sort().map((name) => `/static/js/${name}`),
    '/static/favicon.svg',
    ...icons.sort().map((name) => `/static/icons/${name}`),
    '/manifest.webmanifest',
    ...LANGUAGES.map(offlinePath),
  ];
}

/** The worker's source with its version (a hash of everything it keeps), so any change to the shell installs a new worker. */
function serviceWorkerSource(): string {
  const files = shellFiles();
  const hash = createHash('sha256');
  for (const path of files.filter((file) => file.startsWith('/static/'))) hash.update(path).update(readFileSync(join(webRoot(), path)));
  for (const language of LANGUAGES) hash.update(renderStandalone('offline', language));
  hash.update(JSON.stringify(MANIFEST));
  const source = readFileSync(join(webRoot(), 'pwa', 'sw.js'), 'utf8');
  return source
    .replace("'__VERSION__'", JSON.stringify(hash.digest('hex').slice(0, 16)))
    .replace('__PRECACHE__', JSON.stringify(files))
    .replace('__LANGUAGES__', JSON.stringify(LANGUAGES));
}

export function registerPwaRoutes(app: App): void {
  const worker = serviceWorkerSource();
  const manifest = JSON.stringify(MANIFEST);
  // `no-cache`: the browser may keep them but asks each time whether they changed, so a new
  // version's worker and manifest are found at the next visit.
  app.get('/manifest.webmanifest', { config: { permission: 'public' } }, async (_request, reply) =>
    reply.header('cache-control', 'no-cache').type('application/manifest+json; charset=utf-8').send(manifest),
  );
  app.get('/sw.js', { config: { permission: 'public' } }, async (_request, reply) =>
    reply.header('cache-control', 'no-cache').header('service-worker-allowed', '/').type('text/javascript; charset=utf-8').send(worker),
  );
  app.get<{ Params: { lang: string } }>('/offline/:lang', { config: { permission: 'public' } }, async (request, reply) => {
    const language = LANGUAGES.find((candidate) => candidate === request.params.lang);
    if (language === undefined) return reply.callNotFound();
    return reply.header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(renderStandalone('offline', language));
  });
}
