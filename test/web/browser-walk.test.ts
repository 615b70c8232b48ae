import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { packageRoot } from '../../src/config/load.js';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { LANGUAGES, LANGUAGE_COOKIE } from '../../src/web/i18n.js';
import { THEMES, type Theme } from '../../src/web/theme.js';
import { makeIso } from '../tools/iso.js';
import { type WatchedContext, launchBrowser, watchedContext } from './support/browser.js';
import { type TestRole, type WebTestServer, addTestJob, startWebTestServer } from './support/server.js';

/**
 * Every page of the web interface, in Chromium: at desktop and phone width, in both colour schemes
 * and every language the service offers. Each page is checked with axe-core (no serious or critical
 * violation; at both widths in the first language, at phone width in the others), checked to fit a
 * 390 px phone (nothing cut off, no sideways scrolling of the page), and photographed to
 * test-artifacts/walk/ for a person to look at.
 */

const AXE_SOURCE = readFileSync(fileURLToPath(import.meta.resolve('axe-core/axe.min.js')), 'utf8');
const WALK_DIR = join(packageRoot(), 'test-artifacts', 'walk');
const WIDTHS = [1280, 390] as const;
const PHONE = 390;
/** The schemes a page can be seen in: the choices other than following the system, which is one of them. */
const SCHEMES = THEMES.filter((theme): theme is Exclude<Theme, 'system'> => theme !== 'system');

/** GET routes that answer no page of their own: fragments and streams a page's script fetches, and the metrics. */
const NOT_PAGES: Record<string, string> = {
  '/fragments/dashboard': 'the live part of the dashboard, fetched by its script',
  '/jobs/:id/live': 'the live part of a job page, fetched by its script',
  '/jobs/:id/log': 'log lines appended to a job page by its script',
  '/archive/:id/verification': 'the verification panel of an image page, fetched by its script',
  '/metrics': 'Prometheus text for a scraper',
  '/manifest.webmanifest': 'the web app manifest, JSON for the browser (test/web/pwa.test.ts checks it installs)',
  '/sw.js': 'the service worker script',
};

interface WalkPage {
  name: string;
  /** The route it shows (null: an address no route answers). */
  route: string | null;
  path: string;
  /** Whose session looks at it; null for nobody signed in. */
  role: TestRole | null;
  status: number;
  /** Sets up what the page shows (the user's archive view). */
  prepare?: () => Promise<void>;
}

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: unknown[]; failureSummary?: string }>;
}

/** Interactive elements of a phone-width page that lie outside the viewport and outside any container that scrolls to them. */
const CUT_OFF = `(() => {
  const width = window.innerWidth;
  const cut = [];
  for (const element of document.querySelectorAll('a[href], button, input:not([type="hidden"]), select, textarea, summary')) {
    const box = element.getBoundingClientRect();
    if (box.width === 0 || box.height === 0 || element.closest('.visually-hidden, [hidden]')) continue;
    if (element.classList.contains('skip-link')) continue;
    if (box.left >= -0.5 && box.right <= width + 0.5) continue;
    let scroller = element.parentElement;
    while (scroller && !(['auto', 'scroll'].includes(getComputedStyle(scroller).overflowX) && scroller.scrollWidth > scroller.clientWidth)) scroller = scroller.parentElement;
    if (scroller) {
      const frame = scroller.getBoundingClientRect();
      const left = box.left - frame.left + scroller.scrollLeft;
      const inTableRow = element.closest('tr') !== null;
      // A table that scrolls in its own container is allowed only if its rows' actions can be reached in it.
      if (left >= 0 && left + box.width <= scroller.scrollWidth && !inTableRow) continue;
      if (inTableRow && frame.left >= 0 && frame.right <= width + 0.5 && left >= 0 && left + box.width <= scroller.scrollWidth && box.left >= frame.left - 0.5 && box.right <= frame.right + 0.5) continue;
    }
    cut.push((element.tagName.toLowerCase()) + ' "' + (element.textContent || element.getAttribute('aria-label') || '').trim().slice(0, 40) + '" at ' + Math.round(box.left) + '..' + Math.round(box.right));
  }
  return { scrollWidth: document.documentElement.scrollWidth, width, cut };
})()`;

describe('every page in Chromium: axe, phone width, both schemes, every language', () => {
  let work: string;
  let browser: Browser;
  let server: WebTestServer;
  let pages: WalkPage[];

  const setView = async (view: 'cards' | 'table') => {
    const answer = await server.send('POST', '/archive/view', { form: { view, return_to: '/archive' } });
    assert.equal(answer.status, 303);
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-walk-'));
    await rm(WALK_DIR, { recursive: true, force: true });
    await mkdir(WALK_DIR, { recursive: true });
    browser = await launchBrowser();
    const disc = await makeIso({ dir: work, label: 'WALK_DISC', dataMiB: 1, files: 1, seed: 31 });
    server = await startWebTestServer({ devices: [disc.path] });

    // Jobs in the states the pages show differently, on drives nothing else reads (the test claims them as a worker would).
    const output = server.config.storage.output_dir;
    const worker = 'walk-worker';
    const enqueue = (name: string, device: string, claimed: boolean) =>
      addTestJob(server, { name, device, sizeBytes: 700 * 1024 * 1024, ...(claimed ? { worker } : {}) });
    const running = await enqueue('holiday_photos_2009', 'loop991', true);
    await server.queue.update(running.id, worker, { phase: 'copying', bytesDone: 300 * 1024 * 1024, progress: 42.5, speedBps: 2_400_000, etaSeconds: 263 });
    const queued = await enqueue('backup_dvd_2024', 'loop991', false);
    const finished = await enqueue('old_software_cd', 'loop992', true);
    await server.queue.finish(finished.id, worker, 'completed');
    const failed = await enqueue('scratched_game_disc', 'loop993', true);
    await server.queue.finish(failed.id, worker, 'failed');

    const archive = await server.archiveRepository.create({
      filename: 'holiday_photos_2009_with_a_rather_long_name.iso',
      path: join(output, 'holiday_photos_2009_with_a_rather_long_name.iso'),
      sizeBytes: 4_700_000_000,
      checksums: { sha256: 'a'.repeat(64) },
      metadata: { label: 'Holiday photos 2009' },
      source: { deviceId: 'sr0', devicePath: '/dev/sr0', discKind: 'data', volumeLabel: 'HOLIDAY_2009', volumeId: null, mediaType: 'dvd', fileSystems: [] },
    });
    const rows: Array<[string, Record<string, string | string[]>]> = [
      ['/archive/categories', { name: 'Family' }],
      ['/account/api-keys', { name: 'Home Assistant', scopes: ['jobs:read'], expires_days: '90' }],
    ];
    for (const [path, form] of rows) {
      const answer = await server.send('POST', path, { form: { ...form } });
      assert.ok([200, 201, 303].includes(answer.status), `${path}: ${answer.status}`);
    }

    pages = [
      { name: 'sign-in', route: '/login', path: '/login', role: null, status: 200 },
      { name: 'setup', route: '/setup', path: '/setup?token=used', role: null, status: 409 },
      { name: 'dashboard', route: '/', path: '/', role: 'admin', status: 200 },
      { name: 'dashboard-finished', route: '/', path: '/?tab=finished', role: 'admin', status: 200 },
      { name: 'job-new', route: '/jobs/new', path: '/jobs/new', role: 'admin', status: 200 },
      { name: 'job-running', route: '/jobs/:id', path: `/jobs/${running.id}`, role: 'admin', status: 200 },
      { name: 'job-failed', route: '/jobs/:id', path: `/jobs/${failed.id}`, role: 'admin', status: 200 },
      { name: 'job-cancel', route: '/jobs/:id/cancel', path: `/jobs/${queued.id}/cancel`, role: 'admin', status: 200 },
      { name: 'drives', route: '/drives', path: '/drives', role: 'admin', status: 200 },
      { name: 'archive-cards', route: '/archive', path: '/archive', role: 'admin', status: 200, prepare: () => setView('cards') },
      { name: 'archive-table', route: '/archive', path: '/archive', role: 'admin', status: 200, prepare: () => setView('table') },
      { name: 'archive-detail', route: '/archive/:id', path: `/archive/${archive.id}`, role: 'admin', status: 200 },
      { name: 'archive-delete', route: '/archive/:id/delete', path: `/archive/${archive.id}/delete`, role: 'admin', status: 200 },
      { name: 'archive-recovery', route: '/archive/:id/recovery', path: `/archive/${archive.id}/recovery`, role: 'admin', status: 200 },
      { name: 'archive-categories', route: '/archive/categories', path: '/archive/categories', role: 'admin', status: 200 },
      { name: 'archive-import', route: '/archive/import', path: '/archive/import', role: 'admin', status: 200 },
      { name: 'archive-adopt', route: '/archive/adopt', path: '/archive/adopt', role: 'admin', status: 200 },
      { name: 'config', route: '/config', path: '/config', role: 'admin', status: 200 },
      { name: 'users', route: '/users', path: '/users', role: 'admin', status: 200 },
      { name: 'user-delete', route: '/users/:name/delete', path: '/users/viewer-user/delete', role: 'admin', status: 200 },
      { name: 'account-password', route: '/account/password', path: '/account/password', role: 'admin', status: 200 },
      { name: 'api-keys', route: '/account/api-keys', path: '/account/api-keys', role: 'admin', status: 200 },
      { name: 'account-notifications', route: '/account/notifications', path: '/account/notifications', role: 'admin', status: 200 },
      { name: 'offline', route: '/offline/:lang', path: '/offline/en', role: null, status: 200 },
      { name: 'audit', route: '/audit', path: '/audit', role: 'admin', status: 200 },
      { name: 'not-found', route: null, path: '/no/such/page', role: 'admin', status: 404 },
      { name: 'forbidden', route: '/users', path: '/users', role: 'viewer', status: 403 },
    ];
  });

  after(async () => {
    await browser?.close();
    await server?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('has every GET page route of the service in its list', () => {
    const pageRoutes = server.routeTable
      .filter((route) => route.method === 'GET' && !route.url.startsWith('/api/') && !route.url.startsWith('/static/') && !(route.url in NOT_PAGES))
      .map((route) => route.url);
    assert.ok(pageRoutes.length >= 20, `the route table has the pages: ${pageRoutes.join(' ')}`);
    const walked = new Set(pages.map((page) => page.route));
    assert.deepEqual(
      pageRoutes.filter((route) => !walked.has(route)),
      [],
      'a page route the walk does not visit: add it to the walk (or to NOT_PAGES if it is no page)',
    );
  });

  it('follows the system setting until the user chooses, and then the choice', async () => {
    const background = async (colorScheme: 'light' | 'dark', theme: Theme) => {
      await server.send('POST', '/theme', { form: { theme } });
      const watched = await watchedContext(browser, { colorScheme });
      await watched.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions.admin.id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
      const page = await watched.newPage();
      await page.goto(`${server.url}/`);
      const colour = await page.evaluate('getComputedStyle(document.documentElement).backgroundColor');
      await watched.context.close();
      return colour;
    };
    const light = 'rgb(244, 245, 247)';
    const dark = 'rgb(14, 19, 26)';
    assert.equal(await background('light', 'system'), light);
    assert.equal(await background('dark', 'system'), dark);
    assert.equal(await background('light', 'dark'), dark, 'the choice wins over the system');
    assert.equal(await background('dark', 'light'), light);
  });

  it('finds no serious accessibility problem and cuts nothing off, on any page, scheme, width or language', async () => {
    const problems: string[] = [];
    const started = Date.now();
    let visits = 0;
    // On PostgreSQL a page differs from the embedded one only by what the cluster adds (a job's node, the nodes on the
    // system page): the first language shows that in both schemes and widths; the catalogs are the ones the SQLite pass walks.
    const languages = server.config.database.url === null ? LANGUAGES : LANGUAGES.slice(0, 1);
    for (const scheme of SCHEMES) {
      // The admin's choice, as the switch stores it; the browser's own setting agrees, for pages of nobody signed in.
      await server.send('POST', '/theme', { form: { theme: scheme } });
      for (const lang of languages) {
        const contexts = new Map<TestRole | null, WatchedContext>();
        for (const role of [null, 'admin', 'viewer'] as const) {
          const watched = await watchedContext(browser, { colorScheme: scheme, viewport: { width: WIDTHS[0], height: 900 } });
          const cookies: Array<{ name: string; value: string; url: string }> = [{ name: LANGUAGE_COOKIE, value: lang, url: server.url }];
          if (role !== null) cookies.push({ name: SESSION_COOKIE, value: server.sessions[role].id, url: server.url });
          await watched.context.addCookies(cookies);
          contexts.set(role, watched);
        }
        for (const walk of pages) {
          const watched = contexts.get(walk.role);
          assert.ok(watched);
          await walk.prepare?.();
          const page = await watched.newPage();
          await page.setViewportSize({ width: WIDTHS[0], height: 900 });
          const answer = await page.goto(`${server.url}${walk.path}`, { waitUntil: 'load' });
          assert.equal(answer?.status(), walk.status, `${walk.name} answers ${walk.status}`);
          // The layout follows the width by CSS alone: one load serves both widths.
          for (const width of WIDTHS) {
            await page.setViewportSize({ width, height: 900 });
            visits += 1;
            const where = `${walk.name} (${lang}, ${scheme}, ${width} px)`;
            // axe at both widths in the first language; a translation changes names and lengths, which the phone width shows first.
            const audit = lang === LANGUAGES[0] || width === PHONE;
            for (const violation of audit ? await axeViolations(page) : []) {
              problems.push(
                `${where}: ${violation.impact} ${violation.id}: ${violation.help} at ${violation.nodes.map((node) => JSON.stringify(node.target)).join(', ')}`,
              );
            }
            if (width === PHONE) {
              const fit = (await page.evaluate(CUT_OFF)) as { scrollWidth: number; width: number; cut: string[] };
              if (fit.scrollWidth > fit.width) problems.push(`${where}: the page is ${fit.scrollWidth} px wide`);
              for (const element of fit.cut) problems.push(`${where}: cut off: ${element}`);
            }
            await page.screenshot({ path: join(WALK_DIR, `${walk.name}-${lang}-${scheme}-${width}.png`), fullPage: true, animations: 'disabled' });
          }
          // The browser reports the status of a page that answers with an error (403, 404, 409) itself; that one is expected.
          const expected = `the server responded with a status of ${walk.status}`;
          for (const problem of await watched.collectProblems(page)) {
            if (walk.status === 200 || !problem.includes(expected)) problems.push(`${walk.name} (${lang}, ${scheme}): ${problem}`);
          }
          watched.problems.length = 0;
          await page.close();
        }
        for (const watched of contexts.values()) await watched.context.close();
      }
    }
    await server.send('POST', '/theme', { form: { theme: 'system' } });
    // The walk's length, for the report (speed is no requirement of this test).
    process.stdout.write(`# walked ${visits} page views in ${Math.round((Date.now() - started) / 1000)} s\n`);
    assert.deepEqual(problems, []);
  });
});

/** axe-core's serious and critical violations on the page as it is now (injected past the page's CSP, as a DevTools snippet would be). */
async function axeViolations(page: Page): Promise<Violation[]> {
  await page.evaluate(AXE_SOURCE);
  const violations = (await page.evaluate(
    `axe.run(document, { resultTypes: ['violations'] }).then((result) => result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => ({ target: n.target, failureSummary: n.failureSummary })) })))`,
  )) as Violation[];
  return violations.filter((violation) => violation.impact === 'serious' || violation.impact === 'critical');
}
