// The service worker, served as /sw.js (scope /) with its placeholders filled in by
// src/web/pages/pwa.ts. It keeps the app's shell (styles, scripts, icons) and an offline page, and
// nothing else: pages, API answers and downloads always go to the network and are never stored,
// so nothing private ever lands in the browser's Cache Storage.

const VERSION = '__VERSION__';
/** The static files and offline pages, each fetched at install. */
const PRECACHE = __PRECACHE__;
/** The languages the offline page exists in; the first is the fallback. */
const LANGUAGES = __LANGUAGES__;
const CACHE = `disk2iso-shell-${VERSION}`;

self.addEventListener('install', (event) => {
  event.waitUntil(
    caches
      .open(CACHE)
      .then((cache) => cache.addAll(PRECACHE))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener('activate', (event) => {
  // Caches of earlier versions go: each version's shell is whole on its own.
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((name) => name.startsWith('disk2iso-') && name !== CACHE).map((name) => caches.delete(name))))
      .then(() => self.clients.claim()),
  );
});

/** The offline page in the browser's language, or the first one. */
function offlinePage() {
  const wanted = (self.navigator.languages ?? [self.navigator.language]).map((tag) => String(tag).slice(0, 2).toLowerCase());
  const language = wanted.find((tag) => LANGUAGES.includes(tag)) ?? LANGUAGES[0];
  return caches.match(`/offline/${language}`, { cacheName: CACHE });
}

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === 'navigate') {
    // Pages are personal and live: always from the service, the offline page only when it cannot be reached.
    event.respondWith(fetch(request).catch(() => offlinePage()));
    return;
  }
  if (PRECACHE.includes(url.pathname) && url.search === '') {
    // Network first: a page of a newer version never gets an older script; the kept copy is for the offline page.
    event.respondWith(fetch(request).catch(() => caches.match(request, { cacheName: CACHE })));
  }
  // Everything else (API calls, fragments, downloads, live streams) is left to the browser: not stored.
});

self.addEventListener('push', (event) => {
  let message = {};
  try {
    message = event.data?.json() ?? {};
  } catch {
    message = { body: event.data?.text() ?? '' };
  }
  const path = typeof message.url === 'string' && message.url.startsWith('/') && !message.url.startsWith('//') ? message.url : '/';
  event.waitUntil(
    self.registration.showNotification(message.title || 'disk2iso', {
      body: message.body ?? '',
      icon: '/static/icons/icon-192.png',
      badge: '/static/icons/icon-192.png',
      tag: message.tag,
      data: { url: path },
    }),
  );
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const target = new URL(event.notification.data?.url ?? '/', self.location.origin).href;
  event.waitUntil(
    self.clients.matchAll({ type: 'window', includeUncontrolled: true }).then((windows) => {
      const open = windows.find((client) => client.url === target) ?? windows[0];
      if (open === undefined) return self.clients.openWindow(target);
      return open.focus().then((focused) => (focused.url === target ? focused : focused.navigate(target)));
    }),
  );
});
