import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type TestRole, type WebTestServer, startWebTestServer } from '../support/server.js';

/** The empty state of a page: its data-empty kind and its text and links. */
function emptyState(body: string): { kind: string; html: string } {
  const match = /<(p|div) class="empty[^"]*" data-empty="([a-z]+)">([\s\S]*?)<\/\1>/.exec(body);
  assert.ok(match, 'the page has an empty state');
  return { kind: match[2] ?? '', html: match[3] ?? '' };
}

describe('empty states fit the role', () => {
  let server: WebTestServer;

  before(async () => {
    // No drives, no jobs, an empty archive.
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server.close();
  });

  const page = async (path: string, role: TestRole) => {
    const answer = await server.send('GET', path, { session: server.sessions[role] });
    assert.equal(answer.status, 200, `${path} as ${role}`);
    return answer.body;
  };

  it('never tells a viewer to start a job, nor offers a button they cannot use', async () => {
    for (const path of ['/', '/archive', '/drives']) {
      const body = await page(path, 'viewer');
      assert.ok(!body.includes('href="/jobs/new'), `${path}: no new-job link for a viewer`);
      assert.ok(!body.includes('href="/archive/adopt"'), `${path}: no adoption link for a viewer`);
      assert.doesNotMatch(emptyState(body).html, /start a new imaging job|Image a disc/i, `${path}: not told to start a job`);
    }
    assert.match(emptyState(await page('/', 'viewer')).html, /Jobs appear here as soon as an operator starts one\./);
    assert.match(emptyState(await page('/drives', 'viewer')).html, /if one is missing, ask an administrator\./);
    assert.match(emptyState(await page('/archive', 'viewer')).html, /Finished imaging jobs appear here\./);
  });

  it('gives an operator the next step: a new job', async () => {
    const dashboard = emptyState(await page('/', 'operator'));
    assert.equal(dashboard.kind, 'start');
    assert.match(dashboard.html, /<a class="button primary" href="\/jobs\/new">New imaging job<\/a>/);
    const archive = emptyState(await page('/archive', 'operator'));
    assert.match(archive.html, /Image a disc to fill it\./);
    assert.match(archive.html, /href="\/jobs\/new"/);
    assert.ok(!archive.html.includes('/archive/adopt'), 'adoption is for admins');
    assert.equal(emptyState(await page('/drives', 'operator')).kind, 'ask', 'an operator cannot add devices either');
  });

  it('gives an admin the next steps: a new job, adopting images, configuring devices', async () => {
    const archive = emptyState(await page('/archive', 'admin'));
    assert.match(archive.html, /href="\/jobs\/new"/);
    assert.match(archive.html, /<a class="button" href="\/archive\/adopt">Adopt images already on disk<\/a>/);
    const drives = emptyState(await page('/drives', 'admin'));
    assert.equal(drives.kind, 'configure');
    assert.match(drives.html, /drives\.extra/);
    assert.match(emptyState((await server.send('GET', '/', { session: server.sessions.viewer, lang: 'de' })).body).html, /sobald ein Operator einen startet/);
  });
});
