import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lighthouse, { type Flags } from 'lighthouse';
import desktopConfig from 'lighthouse/core/config/desktop-config.js';
import type { BrowserContext } from 'playwright-core';
import { launchProfileBrowser } from '../test/web/support/browser.js';
import { startWebTestServer } from '../test/web/support/server.js';
import { machineDescription, markdownTable, writeSection } from './report.js';

const PAGES = [
  { name: 'Dashboard', path: '/' },
  { name: 'Archive', path: '/archive' },
  { name: 'Configuration', path: '/config' },
] as const;
const CATEGORIES = ['accessibility', 'best-practices'] as const;
const FORM_FACTORS = ['mobile', 'desktop'] as const;
const SCHEMES = ['light', 'dark'] as const;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Chromium's own verdict on installing the page as an app (what its install prompt checks), in
 * the browser's persistent profile: an incognito context is never installable.
 */
async function installability(context: BrowserContext, url: string): Promise<string> {
  const page = await context.newPage();
  try {
    await page.goto(url, { waitUntil: 'load' });
    const session = await context.newCDPSession(page);
    const { installabilityErrors } = (await session.send('Page.getInstallabilityErrors')) as { installabilityErrors: Array<{ errorId: string }> };
    return installabilityErrors.length === 0 ? 'installable' : installabilityErrors.map((error) => error.errorId).join(', ');
  } finally {
    await page.close();
  }
}

/**
 * Lighthouse 12 (run locally against Debian's Chromium) on the dashboard, the archive and the
 * configuration page, signed in as an admin, in the light and the dark scheme, as a phone and as a
 * desktop: the accessibility and best-practices scores, and Chromium's own installability check
 * (Lighthouse 12 no longer has a PWA category; the install prompt's checks are what it audited).
 */
export async function benchLighthouse(): Promise<void> {
  const service = await startWebTestServer();
  const port = await freePort();
  const profile = await mkdtemp(join(tmpdir(), 'disk2iso-bench-lighthouse-'));
  const browser = await launchProfileBrowser(profile, [`--remote-debugging-port=${port}`]);
  try {
    const cookie = service.sessions.admin.cookie;
    const [cookieName, cookieValue] = cookie.split('=') as [string, string];
    await browser.addCookies([{ name: cookieName, value: cookieValue, url: service.url }]);
    const rows: string[][] = [];
    for (const scheme of SCHEMES) {
      // The admin's stored choice, as the header's switch saves it: the page is rendered in it.
      const saved = await service.send('POST', '/theme', { form: { theme: scheme } });
      if (saved.status !== 303) throw new Error(`choosing the ${scheme} scheme failed with ${saved.status}`);
      for (const page of PAGES) {
        const url = `${service.url}${page.path}`;
        const installable = await installability(browser, url);
        for (const formFactor of FORM_FACTORS) {
          const flags: Flags = { port, output: 'json', logLevel: 'error', onlyCategories: [...CATEGORIES], extraHeaders: { Cookie: cookie } };
          const result = await lighthouse(url, flags, formFactor === 'desktop' ? desktopConfig : undefined);
          if (result === undefined) throw new Error(`Lighthouse returned nothing for ${url}`);
          // Signed out, the page would redirect to the sign-in page, and that would be what was scored.
          if (new URL(result.lhr.finalDisplayedUrl).pathname !== page.path) throw new Error(`Lighthouse audited ${result.lhr.finalDisplayedUrl}, not ${url}`);
          const scores = CATEGORIES.map((category) => {
            const score = result.lhr.categories[category]?.score;
            if (score === null || score === undefined) throw new Error(`no ${category} score for ${url}: ${result.lhr.runtimeError?.message ?? 'unknown'}`);
            return Math.round(score * 100);
          });
          const failing = Object.values(result.lhr.audits)
            .filter((audit) => audit.score !== null && audit.score < 1 && audit.scoreDisplayMode === 'binary')
            .map((audit) => audit.id);
          rows.push([page.name, scheme, formFactor, ...scores.map(String), installable, failing.join(', ') || 'none']);
          console.log(`${page.name} ${scheme} ${formFactor}: ${scores.join(' / ')} ${installable} ${failing.join(', ')}`);
        }
      }
    }
    const table = markdownTable(['Page', 'Scheme', 'Form factor', 'Accessibility', 'Best practices', 'Chromium installability', 'Failed audits'], rows);
    await writeSection(
      'lighthouse',
      `## Lighthouse: accessibility, best practices, installability (\`npm run bench:lighthouse\`)\n\n${machineDescription()}; Lighthouse 12, Debian's Chromium, signed in as an admin.\n\n${table}`,
    );
  } finally {
    await browser.close();
    await service.close();
    await rm(profile, { recursive: true, force: true });
  }
}
