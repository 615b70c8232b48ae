import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { localActor } from '../../../src/auth/principal.js';
import { SESSION_COOKIE } from '../../../src/http/guard.js';
import { INJECT_ORIGIN, type SentRequest, TEST_PASSWORD, type TestSession, type WebTestServer, startWebTestServer } from '../support/server.js';

const ADMIN = localActor('test');

function sessionFrom(answer: SentRequest, user: string): TestSession {
  const id = answer.cookies[SESSION_COOKIE];
  assert.ok(id !== undefined && id !== '', `a session cookie for ${user}`);
  return { user, id, cookie: `${SESSION_COOKIE}=${id}`, csrf: '' };
}

/** The CSRF token of a session, as the page puts it in its meta element. */
async function csrfOf(server: WebTestServer, session: TestSession, page: string): Promise<TestSession> {
  const answer = await server.send('GET', page, { session });
  const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(answer.body)?.[1];
  assert.ok(csrf, `${page} carries the session's CSRF token`);
  return { ...session, csrf };
}

describe('signing in and out', () => {
  let server: WebTestServer;

  const signIn = (username: string, password: string, extra: Record<string, string> = {}) =>
    server.send('POST', '/login', { session: null, form: { username, password, ...extra } });

  before(async () => {
    server = await startWebTestServer({ listen: false });
  });
  after(async () => {
    await server.close();
  });

  it('sends an anonymous visitor to the sign-in page and back where they were going', async () => {
    const asked = await server.send('GET', '/archive?q=disc', { session: null });
    assert.equal(asked.status, 303);
    assert.equal(asked.location, '/login?next=%2Farchive%3Fq%3Ddisc');
    assert.equal((await server.send('GET', '/', { session: null })).location, '/login');

    const page = await server.send('GET', asked.location, { session: null });
    assert.equal(page.status, 200);
    assert.match(page.body, /<form method="post" action="\/login"/);
    assert.match(page.body, /<input type="hidden" name="next" value="\/archive\?q=disc">/);
    assert.match(page.body, /id="lang-select"/, 'the language switch is there');
    assert.ok(!page.body.includes('class="site-nav"') && !page.body.includes('Sign out'), 'no navigation and no account for nobody');
    assert.match((await server.send('GET', '/login', { session: null, lang: 'de' })).body, /Bei disk2iso anmelden/);
    const switched = await server.send('POST', '/language', { session: null, form: { lang: 'de', return_to: '/login' } });
    assert.equal(switched.location, '/login', 'the language switch works before signing in');

    const signedIn = await signIn('operator-user', TEST_PASSWORD, { next: '/archive?q=disc' });
    assert.equal(signedIn.status, 303);
    assert.equal(signedIn.location, '/archive?q=disc');
    assert.match(String(signedIn.headers['set-cookie']), /^disk2iso_session=[A-Za-z0-9_-]+; Path=\/; Expires=[^;]+; HttpOnly; SameSite=Lax$/);
    const operator = sessionFrom(signedIn, 'operator-user');
    const landed = await server.send('GET', signedIn.location, { session: operator });
    assert.equal(landed.status, 200);
    assert.match(landed.body, /class="user-chip"[^>]*><span class="visually-hidden">Signed in as <\/span>operator-user<\/span>/);
    assert.match(landed.body, /<form class="logout-form" method="post" action="\/logout">/);
    assert.match(landed.body, /class="site-nav"/);

    assert.equal((await server.send('GET', '/login', { session: operator })).location, '/', 'a signed-in user has nothing to do on the sign-in page');
    for (const next of ['//evil.example/x', 'https://evil.example/', '/logout', '/login?next=/x']) {
      assert.equal((await signIn('operator-user', TEST_PASSWORD, { next })).location, '/', next);
    }
  });

  it('never leads a sign-in, a password change or a language switch to another site, however the target is dressed up', async () => {
    const hostile = [
      '/.//evil.example/phish',
      '/..//evil.example/phish',
      '/%2e%2e//evil.example/phish',
      '//evil.example/phish',
      '/\\evil.example/phish',
      '/\t/evil.example/phish',
    ];
    for (const target of hostile) {
      const what = JSON.stringify(target);
      const signedIn = await signIn('operator-user', TEST_PASSWORD, { next: target });
      assert.equal(signedIn.status, 303, what);
      assert.equal(signedIn.location, '/', what);
      assert.ok(!(await server.send('GET', `/login?next=${encodeURIComponent(target)}`, { session: null })).body.includes('name="next"'), what);
      const switched = await server.send('POST', '/language', { session: null, form: { lang: 'de', return_to: target } });
      assert.equal(switched.location, '/', what);
    }

    const target = '/.//evil.example/phish';
    await server.auth.users.add({ name: 'wanderer', role: 'viewer', password: TEST_PASSWORD, requireChange: true }, ADMIN);
    const forced = await signIn('wanderer', TEST_PASSWORD, { next: target });
    assert.equal(forced.location, '/account/password');
    const page = `/account/password?next=${encodeURIComponent(target)}`;
    const session = await csrfOf(server, sessionFrom(forced, 'wanderer'), page);
    assert.ok(!(await server.send('GET', page, { session })).body.includes('name="next"'), 'the dashboard comes next, which needs no field');
    const changed = await server.send('POST', '/account/password', {
      session,
      form: { current_password: TEST_PASSWORD, new_password: 'Wanderer-Pass-77', confirm_password: 'Wanderer-Pass-77', next: target },
    });
    assert.equal(changed.location, '/?notice=password_changed');
  });

  it("refuses a sign-in form sent from a sandboxed frame (Origin null), so nobody is signed into another's account", async () => {
    assert.equal((await signIn('operator-user', TEST_PASSWORD)).status, 303, 'the same form from this site signs in');
    for (const headers of [{ origin: 'null' }, { origin: 'null', referer: `${INJECT_ORIGIN}/login` }] as Array<Record<string, string>>) {
      const refused = await server.send('POST', '/login', { session: null, form: { username: 'operator-user', password: TEST_PASSWORD }, headers });
      assert.equal(refused.status, 403, JSON.stringify(headers));
      assert.equal(refused.cookies[SESSION_COOKIE], undefined, 'no session');
      assert.match(refused.body, /This form was sent from another site, so it was refused\./);
      const language = await server.send('POST', '/language', { session: null, form: { lang: 'de', return_to: '/login' }, headers });
      assert.equal(language.status, 403, 'no public form takes Origin null');
    }
  });

  it('answers scripts with 401 in JSON and forms with the sign-in page, never with a redirect', async () => {
    const json = await server.send('GET', '/fragments/dashboard', { session: null, json: true });
    assert.equal(json.status, 401);
    assert.deepEqual(JSON.parse(json.body), { error: { code: 'unauthenticated', message: 'Your session has ended. Sign in again.' } });
    const fragment = await server.send('GET', '/fragments/dashboard', { session: null, headers: { 'sec-fetch-mode': 'cors' } });
    assert.equal(fragment.status, 401);
    assert.equal(JSON.parse(fragment.body).error.code, 'unauthenticated');

    const form = await server.send('POST', '/jobs/job_x/action', {
      session: null,
      form: { action: 'pause' },
      headers: { referer: 'http://localhost/jobs/job_x?tab=log' },
    });
    assert.equal(form.status, 401);
    assert.match(form.body, /<form method="post" action="\/login"/);
    assert.match(form.body, /name="next" value="\/jobs\/job_x\?tab=log"/, 'after signing in, back to the page the form came from');
    const elsewhere = await server.send('POST', '/jobs/job_x/action', {
      session: null,
      form: { action: 'pause' },
      headers: { origin: 'https://evil.example', referer: 'https://evil.example/jobs/job_x' },
    });
    assert.equal(elsewhere.status, 401);
    assert.ok(!elsewhere.body.includes('name="next"'), 'another site’s page is no place to come back to');
    const api = await server.send('GET', '/api/v1/jobs', { session: null });
    assert.equal(api.status, 401);
  });

  it('gives a wrong password, an unknown user and a disabled account the very same page', async () => {
    await server.auth.users.add({ name: 'dora', role: 'viewer', password: TEST_PASSWORD }, ADMIN);
    await server.auth.users.add({ name: 'erin', role: 'viewer', password: TEST_PASSWORD }, ADMIN);
    await server.auth.users.disable('erin', ADMIN);
    const attempts = [
      ['dora', 'Not-The-Password-1'],
      ['nobody-here', 'Not-The-Password-1'],
      ['erin', TEST_PASSWORD],
    ] as const;
    const pages: string[] = [];
    for (const [name, password] of attempts) {
      const answer = await signIn(name, password);
      assert.equal(answer.status, 401, name);
      assert.equal(answer.cookies[SESSION_COOKIE], undefined, 'no session');
      assert.match(answer.body, /role="alert" id="login-problem">The user name or the password is not right\.</);
      assert.match(answer.body, new RegExp(`name="username" value="${name}"`), 'the name typed stays');
      pages.push(answer.body.replaceAll(name, 'NAME'));
    }
    assert.equal(pages[1], pages[0]);
    assert.equal(pages[2], pages[0]);

    const empty = await signIn('dora', '');
    assert.equal(empty.status, 400);
    assert.match(empty.body, /Enter your user name and your password\./);
  });

  it('locks an account out after repeated failures and says how long to wait', async () => {
    await server.auth.users.add({ name: 'lou', role: 'viewer', password: TEST_PASSWORD }, ADMIN);
    for (let attempt = 1; attempt <= 5; attempt++) assert.equal((await signIn('lou', `Wrong-Password-${attempt}`)).status, 401);
    const locked = await signIn('lou', TEST_PASSWORD);
    assert.equal(locked.status, 429);
    assert.match(locked.body, /Too many failed sign-ins for this account or from this address\. Try again in 15 minutes\./);
    assert.ok(Number(locked.headers['retry-after']) > 800, String(locked.headers['retry-after']));
    assert.match(locked.body, /name="username" value="lou"/);
    assert.equal(locked.cookies[SESSION_COOKIE], undefined);
    const german = await server.send('POST', '/login', { session: null, lang: 'de', form: { username: 'lou', password: TEST_PASSWORD } });
    assert.match(german.body, /Versuchen Sie es in 15 Minuten wieder\./);
  });

  it('signs out: the session ends and its cookie no longer works', async () => {
    const session = await server.login('viewer-user');
    const refused = await server.send('POST', '/logout', { session, form: {}, csrf: false });
    assert.equal(refused.status, 403, 'signing out needs the CSRF token too');
    assert.equal((await server.send('GET', '/', { session })).status, 200);

    const out = await server.send('POST', '/logout', { session, form: {} });
    assert.equal(out.status, 303);
    assert.equal(out.location, '/login?notice=signed_out');
    assert.equal(out.cookies[SESSION_COOKIE], '', 'the cookie is cleared');
    assert.match((await server.send('GET', out.location, { session: null })).body, /role="status" data-one-shot>You are signed out\.</);

    const stale = await server.send('GET', '/archive', { session });
    assert.equal(stale.status, 303);
    assert.equal(stale.location, '/login?next=%2Farchive&notice=session_ended');
    assert.equal(stale.cookies[SESSION_COOKIE], '', 'the dead cookie is cleared');
    assert.match((await server.send('GET', stale.location, { session: null })).body, /Your session has ended\. Sign in again to continue\./);
    assert.equal((await server.send('GET', '/api/v1/auth/me', { session })).status, 401);
    const audit = await server.auth.audit.list({ eventType: 'authentication', action: 'logout', user: 'viewer-user' });
    assert.equal(audit.total, 1);
  });

  it('sends a user whose password must change to the password page, allows nothing else, then continues', async () => {
    await server.auth.users.add({ name: 'newcomer', role: 'operator', password: TEST_PASSWORD, requireChange: true }, ADMIN);
    const signedIn = await signIn('newcomer', TEST_PASSWORD, { next: '/archive' });
    assert.equal(signedIn.status, 303);
    assert.equal(signedIn.location, '/account/password?next=%2Farchive');
    const session = await csrfOf(server, sessionFrom(signedIn, 'newcomer'), '/account/password');

    for (const url of ['/', '/archive?q=x', '/config', '/drives', '/jobs/new', '/account/api-keys', '/users']) {
      const answer = await server.send('GET', url, { session });
      assert.equal(answer.status, 303, url);
      assert.equal(answer.location, url === '/' ? '/account/password' : `/account/password?next=${encodeURIComponent(url)}`);
    }
    const form = await server.send('POST', '/jobs/job_x/action', { session, form: { action: 'pause', return_to: '/' } });
    assert.equal(form.location, '/account/password');
    const script = await server.send('GET', '/fragments/dashboard', { session, json: true });
    assert.equal(script.status, 403);
    assert.equal(JSON.parse(script.body).error.code, 'password_change_required');
    const api = await server.send('GET', '/api/v1/jobs', { session });
    assert.equal(api.status, 403);
    assert.equal(JSON.parse(api.body).error.code, 'password_change_required');

    const page = await server.send('GET', '/account/password?next=%2Farchive', { session });
    assert.equal(page.status, 200);
    assert.match(page.body, /Your password has expired or was set by an administrator\. Choose a new one to continue/);
    assert.match(page.body, /<input type="hidden" name="next" value="\/archive">/);
    assert.ok(!page.body.includes('class="site-nav"'), 'no navigation to pages that would refuse');
    assert.ok(!page.body.includes('href="/config#account"'), 'no way back to the settings');
    assert.match(page.body, /action="\/logout"/, 'signing out is possible');

    const changed = await server.send('POST', '/account/password', {
      session,
      form: { current_password: TEST_PASSWORD, new_password: 'Newcomer-Pass-77', confirm_password: 'Newcomer-Pass-77', next: '/archive' },
    });
    assert.equal(changed.status, 303);
    assert.equal(changed.location, '/archive?notice=password_changed');
    const renewed = sessionFrom(changed, 'newcomer');
    const archive = await server.send('GET', changed.location, { session: renewed });
    assert.equal(archive.status, 200);
    assert.match(archive.body, /Your password was changed\./);
    assert.match(archive.body, /class="site-nav"/);
    assert.equal((await server.send('GET', '/archive', { session })).status, 303, 'the session from before the change ended');
  });
});

describe('the first admin, through the setup link', () => {
  let server: WebTestServer;
  let token: string;

  before(async () => {
    server = await startWebTestServer({ listen: false, users: false });
    // Not listening, the service names no address in the link; the token is what counts.
    token = /[?&]token=([A-Za-z0-9_-]+)/.exec(await server.setupLink)?.[1] ?? '';
    assert.match(token, /^[A-Za-z0-9_-]{16,}$/);
  });
  after(async () => {
    await server.close();
  });

  it('creates the first admin once, signed in at once, and refuses the link after that', async () => {
    const wrong = await server.send('GET', '/setup?token=not-the-token-at-all', { session: null });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /This setup link does not work/);
    assert.ok(!wrong.body.includes('name="token"'));

    const form = await server.send('GET', `/setup?token=${token}`, { session: null });
    assert.equal(form.status, 200);
    assert.match(form.body, /<h1 id="setup-heading">Create the first administrator<\/h1>/);
    assert.match(form.body, new RegExp(`<input type="hidden" name="token" value="${token}">`));
    assert.match((await server.send('GET', `/setup?token=${token}`, { session: null, lang: 'de' })).body, /Ersten Administrator anlegen/);

    const post = (fields: Record<string, string>) => server.send('POST', '/setup', { session: null, form: { token, ...fields } });
    const mismatch = await post({ username: 'first-admin', password: 'First-Admin-Pass-1', confirm_password: 'First-Admin-Pass-2' });
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.body, /id="setup-confirm-error">The two new passwords differ/);
    const weak = await post({ username: 'first-admin', password: 'weak', confirm_password: 'weak' });
    assert.match(weak.body, /id="setup-password-error">This password cannot be used: It needs at least 12 characters\./);
    const badName = await post({ username: 'X Y', password: 'First-Admin-Pass-1', confirm_password: 'First-Admin-Pass-1' });
    assert.match(badName.body, /id="setup-username-error">Use 3 to 32 characters/);
    assert.match(badName.body, /name="username" value="X Y"/);
    assert.equal(await server.auth.setup.needed(), true, 'nothing was created yet');

    const created = await post({ username: 'first-admin', password: 'First-Admin-Pass-1', confirm_password: 'First-Admin-Pass-1' });
    assert.equal(created.status, 303);
    assert.equal(created.location, '/?notice=setup_complete');
    const admin = sessionFrom(created, 'first-admin');
    const dashboard = await server.send('GET', created.location, { session: admin });
    assert.equal(dashboard.status, 200);
    assert.match(dashboard.body, /The administrator was created, and you are signed in\. Welcome!/);
    assert.match(dashboard.body, /href="\/config"/);

    const again = await server.send('GET', `/setup?token=${token}`, { session: null });
    assert.equal(again.status, 409);
    assert.match(again.body, /Setup is complete/);
    const reused = await post({ username: 'second-admin', password: 'Second-Admin-Pass-1', confirm_password: 'Second-Admin-Pass-1' });
    assert.equal(reused.status, 409);
    assert.deepEqual(
      (await server.auth.users.list(ADMIN)).map((user) => [user.name, user.role]),
      [['first-admin', 'admin']],
    );
    assert.equal((await server.auth.audit.list({ eventType: 'setup', action: 'completed' })).total, 1);
  });
});

describe('the service’s default rate limits', () => {
  let server: WebTestServer;

  before(async () => {
    server = await startWebTestServer({ listen: false, users: false, defaultRateLimits: true });
  });
  after(async () => {
    await server.close();
  });

  it('limit sign-in attempts per address, answering with the sign-in page and the wait', async () => {
    assert.equal(server.config.security.login_rate_burst, 5);
    const attempts = await Promise.all(
      Array.from({ length: 10 }, () => server.send('POST', '/login', { session: null, form: { username: 'someone', password: 'Not-The-Password-1' } })),
    );
    const limited = attempts.filter((answer) => answer.status === 429);
    assert.ok(limited.length >= 5, `${limited.length} of 10 attempts were limited`);
    assert.ok(attempts.every((answer) => answer.status === 429 || answer.status === 401));
    for (const answer of limited) {
      assert.match(answer.body, /<form method="post" action="\/login"/);
      assert.match(answer.body, /Too many sign-in attempts from your address\. Wait \d+ (seconds?|minutes?), then try again\./);
      assert.ok(Number(answer.headers['retry-after']) >= 1);
    }
  });

  it('limit page requests per address', async () => {
    assert.equal(server.config.security.rate_limit_burst, 20);
    const pages = await Promise.all(Array.from({ length: 60 }, () => server.send('GET', '/login', { session: null })));
    const limited = pages.filter((answer) => answer.status === 429);
    assert.ok(limited.length > 0, 'some requests were limited');
    assert.match(limited[0]?.body ?? '', /Too many requests at once\. Wait a moment, then try again\./);
  });
});
