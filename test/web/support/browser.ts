import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Browser, type BrowserContext, type BrowserContextOptions, type Page, chromium } from 'playwright-core';
import { packageRoot } from '../../../src/config/load.js';

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT_DIR = join(packageRoot(), 'test-artifacts', 'screenshots');
const WIDTHS = { desktop: 1280, phone: 390 } as const;

/**
 * Debian's Chromium, headless, with everything that would reach the network switched off.
 * Playwright gives every launch a fresh temporary profile (its own --user-data-dir).
 */
const LAUNCH = {
  executablePath: CHROMIUM,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
};

/** `extraArgs` add to the command line (a test CA's certificate to accept). */
export function launchBrowser(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({ ...LAUNCH, args: [...LAUNCH.args, ...extraArgs] });
}

/**
 * The same browser with a profile in `userDataDir`: an ordinary window, not an incognito-like
 * context, which is what Chromium requires before it calls a web app installable. `extraArgs`
 * add to the command line (the Lighthouse benchmark's debugging port).
 */
export function launchProfileBrowser(userDataDir: string, extraArgs: readonly string[] = []): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userDataDir, { ...LAUNCH, args: [...LAUNCH.args, ...extraArgs], viewport: { width: WIDTHS.desktop, height: 900 } });
}

/** Records what must never happen on a page: CSP violations, console errors, uncaught exceptions. */
const RECORD_PROBLEMS = `
  window.__problems = [];
  document.addEventListener('securitypolicyviolation', (event) => {
    window.__problems.push('CSP violation: ' + event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline') + ' at ' + event.sourceFile + ':' + event.lineNumber);
  });
`;

export interface WatchedContext {
  context: BrowserContext;
  /** Problems seen by the browser (console errors, page errors) in any page of the context. */
  problems: string[];
  newPage(): Promise<Page>;
  /** Everything recorded so far, including CSP violations reported to the page's scripts. */
  collectProblems(page: Page): Promise<string[]>;
}

export async function watchedContext(browser: Browser, options: BrowserContextOptions = {}): Promise<WatchedContext> {
  const context = await browser.newContext({ viewport: { width: WIDTHS.desktop, height: 900 }, ...options });
  const problems: string[] = [];
  await context.addInitScript(RECORD_PROBLEMS);
  const watch = (page: Page): void => {
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()} (${page.url()})`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message} (${page.url()})`));
  };
  context.on('page', watch);
  return {
    context,
    problems,
    newPage: () => context.newPage(),
    async collectProblems(page) {
      const fromPage: unknown = options.javaScriptEnabled === false ? [] : await page.evaluate('window.__problems ?? []');
      return [...problems, ...(Array.isArray(fromPage) ? fromPage.map(String) : [])];
    },
  };
}

/**
 * Waits until the page's scripts have run (app.js marks <html class="js">). A click that follows a
 * navigation can land before them, and a form then goes as a plain POST, with a banner instead of
 * the toast the test waits for; on a loaded machine that happened.
 */
export async function scriptsReady(page: Page): Promise<void> {
  // A locator, not waitForFunction: a string predicate is evaluated with eval, which the pages' CSP forbids.
  await page.locator('html.js').waitFor({ state: 'attached' });
}

/** The narrowest phone the interface supports. */
const NARROWEST = 360;

/**
 * Full-page screenshots at desktop and phone width (test-artifacts/screenshots/NAME-1280.png and
 * NAME-390.png), after checking that the page fits those widths and the narrowest phone's without
 * scrolling sideways.
 */
export async function screenshots(page: Page, name: string): Promise<void> {
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const original = page.viewportSize() ?? { width: WIDTHS.desktop, height: 900 };
  for (const width of [WIDTHS.desktop, WIDTHS.phone, NARROWEST]) {
    await page.setViewportSize({ width, height: 900 });
    const scrollWidth = Number(await page.evaluate('document.documentElement.scrollWidth'));
    if (scrollWidth > width) throw new Error(`${name} is ${scrollWidth} px wide at a ${width} px viewport`);
    if (width !== NARROWEST) await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${width}.png`), fullPage: true, animations: 'disabled' });
  }
  await page.setViewportSize(original);
}

/** Signs in through the real sign-in form; the page is on it (having been sent there). */
export async function signInThroughForm(page: Page, name: string, password: string): Promise<void> {
  await page.getByLabel('User name', { exact: true }).fill(name);
  await page.getByLabel('Password', { exact: true }).fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}
