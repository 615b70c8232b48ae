import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Locator, Page } from 'playwright-core';
import { SESSION_COOKIE } from '../../src/http/guard.js';
import { testDriveId } from '../support/database.js';
import { sha256File } from '../tools/iso.js';
import { type WatchedContext, launchBrowser, screenshots, scriptsReady, signInThroughForm, watchedContext } from './support/browser.js';
import { type TestDisc, insertTestDisc } from './support/discs.js';
import { TEST_PASSWORD, type TestRole, type WebTestServer, startWebTestServer } from './support/server.js';

/** Polls until `check` holds; the bound keeps a broken run from hanging and is no speed requirement. */
async function waitUntil(what: string, check: () => Promise<boolean>, attempts = 600): Promise<void> {
  for (let attempt = 0; attempt < attempts; attempt++) {
    if (await check()) return;
    await sleep(100);
  }
  throw new Error(`gave up waiting for ${what}`);
}

async function progressOf(card: Locator): Promise<number> {
  return Number(await card.locator('progress').getAttribute('value'));
}

/** Where the scratched test disc's unreadable sectors start: 2 MiB, inside its file data. */
const BAD_START = 2 * 1024 * 1024;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function card(page: Page, name: string): Locator {
  return page.locator(`[data-job-id][data-name="${name}"]`);
}

async function assertNoProblems(watched: WatchedContext, page: Page): Promise<void> {
  assert.deepEqual(await watched.collectProblems(page), []);
}

describe('web interface in Chromium', () => {
  let work: string;
  let browser: Browser;
  let server: WebTestServer;
  const discs: TestDisc[] = [];
  let liveDisc: TestDisc;
  let slowDisc: TestDisc;
  let plainDisc: TestDisc;
  let scratchedDisc: TestDisc;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-browser-'));
    browser = await launchBrowser();
    // The copy pass reads 4 MiB at a time, three in flight; at 0.3 s per file system read each
    // takes a few seconds, slow enough to watch the progress bar move through several steps.
    liveDisc = await insertTestDisc({ dir: work, label: 'WEB_FLOW_DISC', dataMiB: 24, seed: 11, delayMs: 300 });
    discs.push(liveDisc);
    // A job that runs long enough to be paused, resumed and cancelled while it reads.
    slowDisc = await insertTestDisc({ dir: work, label: 'SLOW_DISC', dataMiB: 32, seed: 12, delayMs: 450 });
    discs.push(slowDisc);
    plainDisc = await insertTestDisc({ dir: work, label: 'PLAIN_DISC', dataMiB: 3, seed: 13 });
    discs.push(plainDisc);
    // Eight unreadable sectors in the middle of the data, until the test polishes them out.
    scratchedDisc = await insertTestDisc({ dir: work, label: 'SCRATCHED_DISC', dataMiB: 4, seed: 14, badRanges: [[BAD_START, BAD_START + 8 * 2048]] });
    discs.push(scratchedDisc);
    server = await startWebTestServer({ devices: discs.map((disc) => disc.loop.path) });
  });

  /** A browser context signed in as the role's user: its session cookie, as the sign-in page set it. */
  async function signedInContext(role: TestRole, options: Parameters<typeof watchedContext>[1] = {}): Promise<WatchedContext> {
    const watched = await watchedContext(browser, options);
    await watched.context.addCookies([{ name: SESSION_COOKIE, value: server.sessions[role].id, url: server.url, httpOnly: true, sameSite: 'Lax' }]);
    return watched;
  }

  after(async () => {
    await browser?.close();
    await server?.close();
    for (const disc of discs) await disc.release();
    await rm(work, { recursive: true, force: true });
  });

  it('signs in through the form, creates a job, shows its progress live, finds, downloads, verifies, tags and deletes its image', async () => {
    const watched = await watchedContext(browser);
    const page = await watched.newPage();
    let navigations = 0;
    page.on('framenavigated', (frame) => {
      if (frame === page.mainFrame()) navigations += 1;
    });

    await page.goto(`${server.url}/jobs/new`);
    await page.getByRole('heading', { name: 'Sign in to disk2iso' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/login');
    assert.equal(await page.getByRole('navigation', { name: 'Main' }).count(), 0, 'no navigation before signing in');
    await screenshots(page, 'login');
    await signInThroughForm(page, 'admin-user', 'Not-The-Password-1');
    await page.getByText('The user name or the password is not right.').waitFor();
    await screenshots(page, 'login-failed');
    await page.getByLabel('Password', { exact: true }).fill(TEST_PASSWORD);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { name: 'New imaging job' }).waitFor();
    assert.equal(new URL(page.url()).pathname, '/jobs/new', 'back where the user was going');
    // The failed attempt answered 401, which the browser reports itself; nothing else may show up.
    assert.deepEqual(
      (await watched.collectProblems(page)).filter((problem) => !problem.includes('status of 401')),
      [],
    );
    watched.problems.length = 0;
    await screenshots(page, 'job-new');
    await page.locator('.drive-choice', { hasText: 'WEB_FLOW_DISC' }).getByRole('radio').check();
    // The page the form lands on says so; its script takes the notice away as soon as the job starts,
    // which may be before a locator looks, so the notice is read from the page as the service sent it.
    const landing = page.waitForResponse(
      (response) => response.request().isNavigationRequest() && response.request().method() === 'GET' && response.url().includes('notice='),
    );
    await page.getByRole('button', { name: 'Start imaging' }).click();
    assert.ok((await (await landing).text()).includes('The imaging job was created.'), 'the landing page carries the notice');
    await waitUntil('the one-shot notice to leave the address', async () => new URL(page.url()).search === '');

    const job = card(page, 'WEB_FLOW_DISC');
    await job.waitFor();
    const jobId = (await job.getAttribute('data-job-id')) ?? '';
    const created = await server.auth.audit.list({ eventType: 'job', action: 'create' });
    assert.deepEqual(
      created.items.map((entry) => [entry.user, entry.details]),
      [['admin-user', { id: jobId }]],
      'the job creation is audited',
    );
    const navigationsBefore = navigations;
    await page.evaluate('window.__sameDocument = true');
    await waitUntil('the job to run', async () => (await job.getAttribute('data-status')) === 'running');
    const seen = new Set<number>();
    await waitUntil('the progress bar to move', async () => {
      const value = await progressOf(job);
      if (value > 0 && value < 100) seen.add(value);
      return seen.size >= 2;
    });
    await screenshots(page, 'dashboard');
    await waitUntil('the job to complete', async () => (await job.getAttribute('data-status')) === 'completed');
    // A finished job leaves its big card for a compact row under "Recently finished".
    assert.equal(await job.evaluate((element) => element.closest('section')?.getAttribute('aria-labelledby')), 'recent-heading');
    assert.equal(await job.locator('[data-field="status"]').textContent(), 'Completed');
    assert.equal(await page.evaluate('window.__sameDocument'), true, 'the page was never reloaded');
    assert.equal(navigations, navigationsBefore, 'no navigation while the job ran');
    await page.locator('.toast', { hasText: 'WEB_FLOW_DISC is complete.' }).waitFor();
    await assertNoProblems(watched, page);

    await page.goto(`${server.url}/jobs/${jobId}`);
    await page.getByRole('heading', { name: 'Sector map' }).waitFor();
    assert.match((await page.locator('.legend').textContent()) ?? '', /Rescued: 2\d\.\d MB/);
    await screenshots(page, 'job-detail');

    await page.getByRole('link', { name: 'Archive', exact: true }).click();
    await page.getByLabel('Search the archive', { exact: true }).fill('web_flow');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByText('Showing 1–1 of 1 item').waitFor();
    const entry = page.locator('.archive-card', { hasText: 'WEB_FLOW_DISC' });
    await screenshots(page, 'archive');

    const [download] = await Promise.all([page.waitForEvent('download'), entry.getByRole('link', { name: 'Download' }).click()]);
    const saved = join(work, 'downloaded.iso');
    await download.saveAs(saved);
    assert.equal(await sha256File(saved), liveDisc.iso.sha256, 'the download is the disc, bit for bit');

    await scriptsReady(page);
    await entry.getByRole('button', { name: 'Verify' }).click();
    await page.locator('.toast', { hasText: 'Verification started: the image is re-hashed in the background' }).waitFor();

    await page.locator('.archive-card', { hasText: 'WEB_FLOW_DISC' }).getByRole('link', { name: 'Edit' }).click();
    const runs = page.locator('table.history tbody tr');
    await runs.nth(1).waitFor();
    assert.equal(await runs.count(), 2, 'verified after imaging and now');
    // The image's page follows its verification live: the new run appears without a reload.
    await scriptsReady(page);
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.locator('.toast', { hasText: 'Verification started' }).waitFor();
    await runs.nth(2).waitFor();
    assert.equal(await runs.count(), 3);
    assert.equal(await runs.first().locator('.badge').textContent(), 'Matches');
    await page.getByLabel('Tags', { exact: true }).fill('family, 2024');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Label, tags and notes were saved.').waitFor();
    await screenshots(page, 'archive-detail');
    await page.goto(`${server.url}/archive?q=family`);
    await page.getByText('Showing 1–1 of 1 item').waitFor();
    await page.locator('.archive-card .tag', { hasText: 'family' }).waitFor();

    await page.locator('.archive-card', { hasText: 'WEB_FLOW_DISC' }).getByRole('link', { name: 'Delete' }).click();
    await page.getByRole('heading', { name: 'Delete 1 image?' }).waitFor();
    await screenshots(page, 'archive-delete');
    await page.getByRole('button', { name: 'Delete for good' }).click();
    await page.getByText('The image was deleted.').waitFor();
    await page.getByText('The archive is empty.').waitFor();
    const imagePath = (await server.jobs.get(jobId)).output_file;
    await assert.rejects(access(imagePath), 'the image file is gone');
    const deletions = await server.auth.audit.list({ eventType: 'archive', action: 'delete' });
    assert.equal(deletions.items[0]?.user, 'admin-user', 'the deletion is audited');
    await assertNoProblems(watched, page);
    await watched.context.close();
  });

  it('pauses, resumes, cancels and reprioritises jobs from the dashboard', async () => {
    const first = await server.jobs.create({ device: testDriveId(slowDisc.loop.name), name: 'slow_first' }, 'admin-user');
    const second = await server.jobs.create({ device: testDriveId(slowDisc.loop.name), name: 'slow_second' }, 'admin-user');
    const watched = await signedInContext('admin');
    const page = await watched.newPage();
    await page.goto(server.url);
    const running = card(page, 'slow_first');
    const waiting = card(page, 'slow_second');
    await waitUntil('the first job to run', async () => (await running.getAttribute('data-status')) === 'running');
    assert.match((await waiting.textContent()) ?? '', /#1 in queue/);

    await scriptsReady(page);
    await waiting.getByText('Edit priority').click();
    await waiting.getByLabel('Priority').selectOption('high');
    await waiting.getByRole('button', { name: 'Save' }).click();
    await page.locator('.toast', { hasText: 'The priority was changed.' }).waitFor();
    assert.equal((await server.jobs.get(second.id)).priority, 'high');

    await running.getByRole('button', { name: 'Pause' }).click();
    await waitUntil('the job to pause', async () => (await running.getAttribute('data-status')) === 'paused');
    assert.match((await running.getAttribute('class')) ?? '', /tone-paused/);
    await screenshots(page, 'dashboard-paused');
    // The queued job takes the free drive; the paused one waits to be resumed.
    await waitUntil('the second job to run', async () => (await waiting.getAttribute('data-status')) === 'running');
    await waitUntil('the second job to have read something', async () => (await server.jobs.get(second.id)).bytes_done > 0);
    // Cancel is no button beside Pause: a link that asks first, in a dialog, saying how much was read.
    assert.equal(await waiting.getByRole('button', { name: /Cancel/ }).count(), 0);
    await waiting.getByRole('link', { name: 'Cancel job…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Cancel “slow_second”?' });
    await dialog.waitFor();
    assert.match((await dialog.textContent()) ?? '', /have been read so far/);
    assert.equal(await dialog.getByLabel(/Keep the partial image/).isChecked(), true, 'keeping is the default for a job with progress');
    await screenshots(page, 'cancel-dialog');
    await dialog.getByRole('link', { name: 'Do not cancel' }).click();
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await server.jobs.get(second.id)).status, 'running', 'closing the dialog cancels nothing');
    await waiting.getByRole('link', { name: 'Cancel job…' }).click();
    await dialog.getByLabel(/Delete the partial image/).check();
    await dialog.getByRole('button', { name: 'Cancel the job' }).click();
    await waitUntil('the second job to be cancelled', async () => (await waiting.getAttribute('data-status')) === 'cancelled');
    await waitUntil('its partial image to be removed, as chosen', async () => !(await exists(`${second.output_file}.part`)));
    assert.equal(await exists(`${second.output_file}.map`), false);

    await running.getByRole('button', { name: 'Resume' }).click();
    await waitUntil('the job to run again', async () => (await running.getAttribute('data-status')) === 'running');
    const resumedJob = await server.jobs.get(first.id);
    assert.ok(resumedJob.attempts >= 2, 'it ran a second time, from its map');
    await waitUntil('the first job to report progress again', async () => (await server.jobs.get(first.id)).bytes_done > 0);
    await scriptsReady(page);
    await running.getByRole('link', { name: 'Cancel job…' }).click();
    await page.getByRole('dialog', { name: 'Cancel “slow_first”?' }).getByRole('button', { name: 'Cancel the job' }).click();
    await page.locator('.toast', { hasText: 'its partial image and rescue map were kept' }).waitFor();
    await waitUntil('the job to be cancelled', async () => (await running.getAttribute('data-status')) === 'cancelled');
    assert.equal((await server.jobs.get(first.id)).status, 'cancelled');
    assert.equal(await exists(`${first.output_file}.part`), true, 'the rescued data is kept by default');
    assert.equal(await exists(`${first.output_file}.map`), true);
    await assertNoProblems(watched, page);
    await watched.context.close();
  });

  it('shows a run with unreadable sectors in amber everywhere, and reads its bad areas again from the map', async () => {
    const scratched = scratchedDisc;
    const faults = scratched.faults;
    assert.ok(faults !== null);
    // The dashboard is open before the job starts: its end must reach the page live, as a toast (a job
    // created first could end before the page's live stream opens, and then no toast is due).
    const watched = await signedInContext('admin');
    const page = await watched.newPage();
    const streamOpen = page.waitForResponse((response) => new URL(response.url()).pathname === '/api/v1/events');
    await page.goto(server.url);
    await streamOpen;
    const created = await server.jobs.create(
      { device: testDriveId(scratched.loop.name), name: 'scratched_copy', options: { read_attempts: 1, checksums: ['sha256'] } },
      'admin-user',
    );
    const job = card(page, 'scratched_copy');
    await waitUntil('the job to complete', async () => (await job.getAttribute('data-status')) === 'completed');

    const done = await server.jobs.get(created.id);
    assert.equal(done.outcome, 'with_errors');
    assert.deepEqual(done.bad_sectors, { sectors: 8, bytes: 8 * 2048, zero_filled: true, map_url: `/api/v1/jobs/${created.id}/map` });
    assert.match(await server.jobs.rescueMap(created.id), new RegExp(`0x${BAD_START.toString(16).toUpperCase().padStart(8, '0')}\\s+0x00004000\\s+-`, 'i'));
    assert.match((await job.getAttribute('class')) ?? '', /tone-with-errors/);
    assert.equal((await job.locator('[data-field="status"]').textContent())?.trim(), 'Completed with errors');
    assert.match((await job.textContent()) ?? '', /8 sectors \(16\.4 kB\) could not be read; they are zero-filled in the image\./);
    await page.locator('.toast', { hasText: 'scratched_copy is complete, but some sectors could not be read.' }).waitFor();
    await screenshots(page, 'dashboard-with-errors');

    await page.goto(`${server.url}/jobs/${created.id}`);
    assert.match((await page.locator('.job-summary').getAttribute('class')) ?? '', /tone-with-errors/);
    await page.locator('.page-head .badge', { hasText: 'Completed with errors' }).waitFor();
    await page.getByRole('link', { name: 'Download the rescue map' }).waitFor();

    await page.goto(`${server.url}/archive`);
    const entry = page.locator('.archive-card', { hasText: 'scratched_copy' });
    assert.equal((await entry.locator('h2').textContent())?.trim(), 'scratched_copy', "the entry's title is the job's name");
    await entry.getByText('Volume label: SCRATCHED_DISC').waitFor();
    await entry.locator('.badge.tone-with-errors', { hasText: 'Completed with errors' }).waitFor();
    await screenshots(page, 'archive-with-errors');

    // The scratch is polished out: the retry reads only the bad areas and ends with the disc, bit for bit.
    await faults.setBadRanges([]);
    await page.goto(`${server.url}/jobs/${created.id}`);
    await scriptsReady(page);
    await page.getByRole('button', { name: 'Retry the bad areas' }).click();
    await page.locator('.toast', { hasText: 'it reads only the bad areas' }).waitFor();
    await waitUntil('the retry to complete', async () => {
      const current = await server.jobs.get(created.id);
      return current.status === 'completed' && current.outcome === 'clean';
    });
    const clean = await server.jobs.get(created.id);
    assert.equal(clean.bad_sectors, null);
    assert.equal(clean.archive_id, done.archive_id, 'the same archive entry, updated');
    assert.equal(await sha256File(clean.output_file), scratched.iso.sha256, 'the image is now the disc, bit for bit');
    assert.equal(await exists(`${clean.output_file}.part`), false);
    const archive = await server.archiveRepository.get(done.archive_id ?? '');
    assert.equal(archive?.badBytes, 0);
    assert.equal(archive?.status, 'ok');
    assert.equal(archive?.checksums.sha256, scratched.iso.sha256);
    assert.equal((await server.archiveRepository.list({})).items.filter((item) => item.jobId === created.id).length, 1);
    await page.goto(`${server.url}/jobs/${created.id}`);
    await page.locator('.page-head .badge', { hasText: /^Completed$/ }).waitFor();
    await assertNoProblems(watched, page);
    await watched.context.close();
  });

  it('refreshes every 2 seconds while live updates are unavailable', async () => {
    const watched = await signedInContext('admin');
    await watched.context.route('**/api/v1/events', (route) => route.fulfill({ status: 503, contentType: 'text/plain', body: 'unavailable' }));
    const page = await watched.newPage();
    let fragments = 0;
    page.on('request', (request) => {
      if (request.url().includes('/fragments/dashboard')) fragments += 1;
    });
    await page.goto(server.url);
    await page.locator('.toast', { hasText: 'Live updates are interrupted' }).waitFor();
    await waitUntil('two refreshes', async () => fragments >= 2);
    const problems = (await watched.collectProblems(page)).filter((problem) => !/api\/v1\/events|503/.test(problem));
    assert.deepEqual(problems, []);
    await watched.context.close();
  });

  it('changes a setting and switches the language', async () => {
    const watched = await signedInContext('admin');
    const page = await watched.newPage();
    await page.goto(`${server.url}/config`);
    await page.getByLabel('Read attempts', { exact: true }).fill('7');
    await page.getByRole('button', { name: 'Save Imaging defaults' }).click();
    await page.getByText('The settings were saved.').waitFor();
    assert.equal(await page.getByLabel('Read attempts', { exact: true }).inputValue(), '7');
    assert.equal(server.config.imaging.read_attempts, 7);
    await screenshots(page, 'config');

    await page.getByLabel('Language').selectOption('de');
    await page.getByRole('heading', { name: 'Einstellungen' }).waitFor();
    await page.goto(server.url);
    await page.getByRole('heading', { name: 'Übersicht' }).waitFor();
    await screenshots(page, 'dashboard-de');
    await page.getByLabel('Sprache').selectOption('en');
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();

    await page.goto(`${server.url}/drives`);
    await page.getByText('PLAIN_DISC').first().waitFor();
    await screenshots(page, 'drives');
    await assertNoProblems(watched, page);
    await page.goto(`${server.url}/jobs/job_doesnotexist`);
    await page.getByRole('heading', { name: 'Not found' }).waitFor();
    await screenshots(page, 'not-found');
    // The browser reports the 404 status itself; anything else would be a problem.
    assert.deepEqual(
      (await watched.collectProblems(page)).filter((problem) => !problem.includes('status of 404')),
      [],
    );

    // The watcher itself: an inline style is refused by the policy and reported.
    await page.evaluate(`document.body.insertAdjacentHTML('beforeend', '<p style="color: red">x</p>')`);
    await waitUntil('the violation to be recorded', async () => (await watched.collectProblems(page)).some((problem) => problem.startsWith('CSP violation')));
    await watched.context.close();
  });

  it('creates and revokes an API key, and manages users', async () => {
    const watched = await signedInContext('admin');
    const page = await watched.newPage();
    await page.goto(`${server.url}/config`);
    await page.getByRole('link', { name: 'Manage API keys' }).click();
    await page.getByLabel('Name', { exact: true }).fill('nightly export');
    await page.getByLabel('archives:read').check();
    await page.getByLabel('Expires after (days)').fill('30');
    await page.getByRole('button', { name: 'Create key' }).click();
    const secret = await page.getByLabel('The new API key').inputValue();
    assert.match(secret, /^d2i_/);
    assert.ok(await server.auth.apiKeys.authenticate(secret), 'the key works');
    await screenshots(page, 'api-keys');
    await scriptsReady(page);
    await page
      .getByRole('row', { name: /nightly export/ })
      .getByRole('button', { name: 'Revoke' })
      .click();
    await page.locator('.toast', { hasText: 'The API key was revoked.' }).waitFor();
    await page
      .getByRole('row', { name: /nightly export/ })
      .getByText('Revoked')
      .waitFor();
    assert.equal(await server.auth.apiKeys.authenticate(secret), null, 'the key no longer works');

    await page.goto(`${server.url}/users`);
    await page.getByLabel('User name').fill('helper');
    await page.getByLabel('Role', { exact: true }).selectOption('operator');
    await page.getByLabel('First password').fill('Helper-Pass-123');
    await page.getByRole('button', { name: 'Add user' }).click();
    await page.getByText('The user was added.').waitFor();
    await scriptsReady(page);
    await page.getByLabel('Role of helper').selectOption('viewer');
    await page
      .getByRole('row', { name: /helper/ })
      .getByRole('button', { name: 'Set role' })
      .click();
    await page.locator('.toast', { hasText: 'The role was changed.' }).waitFor();
    await screenshots(page, 'users');
    await page.goto(`${server.url}/audit`);
    await page.getByRole('cell', { name: 'role_change' }).first().waitFor();
    await screenshots(page, 'audit');
    await page.goto(`${server.url}/account/password`);
    await screenshots(page, 'account-password');
    await assertNoProblems(watched, page);
    await watched.context.close();
  });

  it('shows a viewer no buttons it may not use, and the server refuses them anyway', async () => {
    const watched = await signedInContext('viewer');
    const page = await watched.newPage();
    await page.goto(server.url);
    await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
    assert.equal(await page.getByRole('link', { name: /New imaging job/ }).count(), 0);
    assert.equal(await page.getByRole('button', { name: /Retry|Pause|Cancel|Resume/ }).count(), 0);
    await page.goto(`${server.url}/config`);
    assert.equal(await page.getByRole('button', { name: /^Save/ }).count(), 0);
    assert.ok(await page.getByLabel('Read attempts', { exact: true }).isDisabled());
    const job = (await server.jobs.list({ limit: 1, offset: 0, sort: 'created' })).jobs[0];
    assert.ok(job);
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    const refused = await page.request.post(`${server.url}/jobs/${job.id}/action`, {
      form: { _csrf: csrf ?? '', action: 'retry' },
      headers: { accept: 'application/json', origin: server.url },
    });
    assert.equal(refused.status(), 403);
    assert.equal((await refused.json()).error.code, 'permission_denied');
    const api = await page.request.patch(`${server.url}/api/v1/jobs/${job.id}`, { data: { action: 'retry' } });
    assert.equal(api.status(), 403);
    await assertNoProblems(watched, page);
    await watched.context.close();
  });

  it('does the main flow without JavaScript: plain forms, redirects and links', async () => {
    const watched = await watchedContext(browser, { javaScriptEnabled: false });
    const page = await watched.newPage();
    await page.goto(`${server.url}/jobs/new`);
    await signInThroughForm(page, 'admin-user', TEST_PASSWORD);
    await page.getByRole('heading', { name: 'New imaging job' }).waitFor();
    await page.locator('.drive-choice', { hasText: 'PLAIN_DISC' }).getByRole('radio').check();
    await page.getByLabel('Name', { exact: true }).fill('no_script <b>disc<b> "q"');
    await page.getByRole('button', { name: 'Start imaging' }).click();
    await page.getByText('The imaging job was created.').waitFor();
    const job = page.locator('[data-job-id]').filter({ hasText: 'no_script <b>disc<b> "q"' });
    await job.waitFor();
    // Without JavaScript nothing updates by itself: the user reloads.
    await waitUntil('the job to complete', async () => {
      await page.reload();
      return (await job.getAttribute('data-status')) === 'completed';
    });

    await page.goto(`${server.url}/archive`);
    await page.getByLabel('Search the archive', { exact: true }).fill('plain_disc');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await page.getByText('Showing 1–1 of 1 item').waitFor();
    const entry = page.locator('.archive-card', { hasText: 'no_script' });
    const [download] = await Promise.all([page.waitForEvent('download'), entry.getByRole('link', { name: 'Download' }).click()]);
    const saved = join(work, 'downloaded-plain.iso');
    await download.saveAs(saved);
    assert.equal(await sha256File(saved), plainDisc.iso.sha256);

    await entry.getByRole('button', { name: 'Verify' }).click();
    await page.getByText('Verification started: the image is re-hashed in the background').waitFor();
    await page.locator('.archive-card', { hasText: 'no_script' }).getByRole('link', { name: 'Edit' }).click();
    await page.getByLabel('Tags', { exact: true }).fill('no-js');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByText('Label, tags and notes were saved.').waitFor();
    assert.equal(await page.getByLabel('Tags', { exact: true }).inputValue(), 'no-js');
    await page.getByRole('link', { name: 'Delete' }).click();
    await page.getByRole('button', { name: 'Delete for good' }).click();
    await page.getByText('The image was deleted.').waitFor();

    // Cancel without script: a confirmation page, then POST, redirect, GET; the read data is kept.
    const slow = await server.jobs.create({ device: testDriveId(slowDisc.loop.name), name: 'no_script_cancel' }, 'admin-user');
    await waitUntil('the slow job to have read something', async () => (await server.jobs.get(slow.id)).bytes_done > 0);
    await page.goto(`${server.url}/jobs/${slow.id}`);
    await page.getByRole('link', { name: 'Cancel job…' }).click();
    await page.getByRole('heading', { name: 'Cancel “no_script_cancel”?' }).waitFor();
    assert.equal(new URL(page.url()).pathname, `/jobs/${slow.id}/cancel`);
    assert.equal(await page.getByLabel(/Keep the partial image/).isChecked(), true);
    await screenshots(page, 'cancel-page');
    await page.getByRole('button', { name: 'Cancel the job' }).click();
    await page.getByText('The job was cancelled; its partial image and rescue map were kept.').waitFor();
    await waitUntil('the slow job to stop', async () => (await server.jobs.get(slow.id)).status === 'cancelled');
    assert.equal(await exists(`${slow.output_file}.part`), true);

    await page.goto(`${server.url}/config`);
    await page.getByLabel('Read attempts', { exact: true }).fill('4');
    await page.getByRole('button', { name: 'Save Imaging defaults' }).click();
    await page.getByText('The settings were saved.').waitFor();
    assert.equal(server.config.imaging.read_attempts, 4);
    await page.getByLabel('Language').selectOption('de');
    await page.getByRole('button', { name: 'Change' }).click();
    await page.getByRole('heading', { name: 'Einstellungen' }).waitFor();

    await page.getByRole('button', { name: 'Abmelden' }).click();
    await page.getByText('Sie sind abgemeldet.').waitFor();
    await page.goto(`${server.url}/config`);
    await page.getByRole('heading', { name: 'Bei disk2iso anmelden' }).waitFor();
    await assertNoProblems(watched, page);
    await watched.context.close();
  });

  it('creates the first admin through the setup link, in the browser', async () => {
    const fresh = await startWebTestServer({ users: false });
    try {
      const link = await fresh.setupLink;
      assert.ok(link.startsWith(`${fresh.url}/setup?token=`), link);
      const watched = await watchedContext(browser);
      const page = await watched.newPage();
      await page.goto(link);
      await page.getByRole('heading', { name: 'Create the first administrator' }).waitFor();
      await screenshots(page, 'setup');
      await page.getByLabel('User name', { exact: true }).fill('first-admin');
      await page.getByLabel('Password', { exact: true }).fill('First-Admin-Pass-1');
      await page.getByLabel('Password again', { exact: true }).fill('First-Admin-Pass-1');
      await page.getByRole('button', { name: 'Create administrator' }).click();
      await page.getByText('The administrator was created, and you are signed in. Welcome!').waitFor();
      await page.getByRole('heading', { name: 'Dashboard' }).waitFor();
      await assertNoProblems(watched, page);
      await watched.context.close();
    } finally {
      await fresh.close();
    }
  });
});
