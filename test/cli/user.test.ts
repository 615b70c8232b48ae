import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createAuthService } from '../../src/auth/service.js';
import { parseExpiry } from '../../src/cli/apikey.js';
import { packageRoot } from '../../src/config/load.js';
import { openDatabase } from '../../src/db/database.js';

const CLI_PATH = join(packageRoot(), 'bin', 'disk2iso');
const ADMIN_PASSWORD = 'Cli-admin-passw0rd';
const CLIENT = { ip: '192.0.2.7', userAgent: 'test' };

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/disk2iso` as a separate process with its own data dir, feeding `stdin` when given. */
function run(dataDir: string, args: string[], stdin?: string): Promise<Result> {
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DISK2ISO_DATA_DIR: dataDir },
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  if (stdin !== undefined) child.stdin?.end(stdin);
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Opens the data dir's database the way the service does, while the CLI works on the same file. */
async function withService<T>(dataDir: string, work: (auth: ReturnType<typeof createAuthService>) => Promise<T>): Promise<T> {
  const database = await openDatabase({ file: join(dataDir, 'disk2iso.db') });
  try {
    return await work(createAuthService({ database, dataDir }));
  } finally {
    await database.close();
  }
}

describe('disk2iso user and apikey commands', () => {
  let work: string;
  let seq = 0;
  const cliUser = `cli:${userInfo().username}`;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-cli-user-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  async function dataDir(): Promise<string> {
    seq += 1;
    return mkdtemp(join(work, `data-${seq}-`));
  }

  it('adds the first admin from --password-stdin, lists users and refuses what it must', async () => {
    const dir = await dataDir();
    const added = await run(dir, ['user', 'add', 'alice', '--role', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    assert.equal(added.code, 0, added.stderr);
    assert.equal(added.stdout, 'Added admin alice.\n');

    const listed = await run(dir, ['user', 'list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const users = (JSON.parse(listed.stdout) as { users: Array<Record<string, unknown>> }).users;
    assert.deepEqual(
      users.map((user) => [user.name, user.role, user.disabled]),
      [['alice', 'admin', false]],
    );
    assert.equal(JSON.stringify(users).includes('$2b$'), false, 'no hash in the output');

    const table = await run(dir, ['user', 'list']);
    assert.match(table.stdout, /^NAME\s+ROLE\s+STATUS\s+PASSWORD CHANGED\s+LAST LOGIN\nalice\s+admin\s+enabled\s+\d{4}-/);

    const weak = await run(dir, ['user', 'add', 'bob', '--role', 'viewer', '--password-stdin'], 'password\n');
    assert.equal(weak.code, 2, weak.stderr);
    assert.equal(weak.stderr, 'disk2iso: Password must be at least 12 characters long; must contain an upper-case letter; must contain a digit\n');

    const noTerminal = await run(dir, ['user', 'add', 'bob', '--role', 'viewer']);
    assert.equal(noTerminal.code, 2, noTerminal.stderr);
    assert.match(noTerminal.stderr, /No terminal to ask for the password on; pipe it in with --password-stdin/);

    const taken = await run(dir, ['user', 'add', 'alice', '--role', 'viewer', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    assert.equal(taken.code, 2, taken.stderr);
    assert.match(taken.stderr, /User alice already exists/);

    const badRole = await run(dir, ['user', 'add', 'bob', '--role', 'root', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    assert.equal(badRole.code, 2, badRole.stderr);
    assert.match(badRole.stderr, /Role must be one of admin, operator, viewer/);

    const badName = await run(dir, ['user', 'add', 'Bob!', '--role', 'viewer', '--password-stdin'], `${ADMIN_PASSWORD}\n`);
    assert.equal(badName.code, 2, badName.stderr);
    assert.match(badName.stderr, /User name must be 3 to 32 characters/);

    const lastAdmin = await run(dir, ['user', 'delete', 'alice']);
    assert.equal(lastAdmin.code, 2, lastAdmin.stderr);
    assert.equal(lastAdmin.stderr, 'disk2iso: Cannot delete alice: it is the last enabled admin\n');
    for (const args of [
      ['user', 'disable', 'alice'],
      ['user', 'set-role', 'alice', 'viewer'],
    ]) {
      const refused = await run(dir, args);
      assert.equal(refused.code, 2, args.join(' '));
      assert.match(refused.stderr, /last enabled admin/);
    }
    const unknown = await run(dir, ['user', 'disable', 'nobody']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.equal(unknown.stderr, 'disk2iso: No user named nobody\n');
    const unknownReset = await run(dir, ['user', 'reset-password', 'nobody']);
    assert.equal(unknownReset.stderr, 'disk2iso: No user named nobody\n', 'checked before asking for a password');

    await withService(dir, async (auth) => {
      const { principal } = await auth.login('alice', ADMIN_PASSWORD, CLIENT);
      assert.equal(principal.can('users:admin'), true);
    });
  });

  it('manages a user through its life while the service has the database open, and audits each step as the CLI', async () => {
    const dir = await dataDir();
    assert.equal((await run(dir, ['user', 'add', 'admin', '--role', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`)).code, 0);
    assert.equal((await run(dir, ['user', 'add', 'bob', '--role', 'operator', '--password-stdin'], 'Bobs-passw0rd-1\n')).code, 0);

    const database = await openDatabase({ file: join(dir, 'disk2iso.db') });
    try {
      const auth = createAuthService({ database, dataDir: dir });
      const session = (await auth.login('bob', 'Bobs-passw0rd-1', CLIENT)).session.id;
      assert.equal((await auth.authenticateRequest({ cookie: session }))?.role, 'operator');

      const demoted = await run(dir, ['user', 'set-role', 'bob', 'viewer']);
      assert.equal(demoted.code, 0, demoted.stderr);
      assert.equal(demoted.stdout, 'bob is viewer.\n');
      assert.equal((await auth.authenticateRequest({ cookie: session }))?.role, 'viewer', 'the running service sees the change at once');

      const reset = await run(dir, ['user', 'reset-password', 'bob', '--password-stdin', '--require-change'], 'Reset-by-cli-pass1\r\n');
      assert.equal(reset.code, 0, reset.stderr);
      assert.equal(await auth.authenticateRequest({ cookie: session }), null, "the reset ended bob's session");
      const relogin = await auth.login('bob', 'Reset-by-cli-pass1', CLIENT);
      assert.equal(relogin.principal.mustChangePassword, true);

      assert.equal((await run(dir, ['user', 'disable', 'bob'])).stdout, 'Disabled bob.\n');
      assert.equal(await auth.authenticateRequest({ cookie: relogin.session.id }), null, 'disabling ended the session');
      await assert.rejects(auth.login('bob', 'Reset-by-cli-pass1', CLIENT), { code: 'invalid_credentials' });
      const listed = await run(dir, ['user', 'list']);
      assert.match(listed.stdout, /\nbob\s+viewer\s+disabled\s/);

      assert.equal((await run(dir, ['user', 'enable', 'bob'])).stdout, 'Enabled bob.\n');
      await auth.login('bob', 'Reset-by-cli-pass1', CLIENT);
      assert.equal((await run(dir, ['user', 'delete', 'bob'])).stdout, 'Deleted bob.\n');
      assert.equal((await run(dir, ['user', 'delete', 'bob'])).code, 2);

      const entries = (await auth.audit.list({ eventType: 'user', order: 'asc' })).items;
      assert.deepEqual(
        entries.map((entry) => [entry.action, entry.user, entry.ip_address, entry.details.name]),
        [
          ['add', cliUser, 'local', 'admin'],
          ['add', cliUser, 'local', 'bob'],
          ['role_change', cliUser, 'local', 'bob'],
          ['reset_password', cliUser, 'local', 'bob'],
          ['disable', cliUser, 'local', 'bob'],
          ['enable', cliUser, 'local', 'bob'],
          ['delete', cliUser, 'local', 'bob'],
        ],
      );
      assert.equal(entries[3]?.details.sessions_ended, 1);
    } finally {
      await database.close();
    }
  });

  it('creates an API key that is printed once and works, lists it without the secret, and revokes it', async () => {
    const dir = await dataDir();
    assert.equal((await run(dir, ['user', 'add', 'ops', '--role', 'operator', '--password-stdin'], 'Ops-passw0rd-123\n')).code, 0);

    const created = await run(dir, ['apikey', 'create', '--user', 'ops', '--name', 'nightly backup', '--scopes', 'jobs:read,jobs:write', '--expires', '30d']);
    assert.equal(created.code, 0, created.stderr);
    const key = created.stdout.trim();
    assert.match(created.stdout, /^d2i_[A-Za-z0-9_-]{43}\n$/, 'stdout is the key alone');
    assert.match(
      created.stderr,
      /^Created API key key_[0-9a-f]{20} "nightly backup" for ops; scopes: jobs:read, jobs:write; expires: \d{4}-.*\nStore the key now: it is not shown again\.\n$/,
    );

    const asJson = await run(dir, ['apikey', 'create', '--user', 'ops', '--name', 'json one', '--json']);
    assert.equal(asJson.code, 0, asJson.stderr);
    const parsed = JSON.parse(asJson.stdout) as { key: string; api_key: { id: string; scopes: null; status: string; user: string; prefix: string } };
    assert.match(parsed.key, /^d2i_/);
    assert.deepEqual(
      [parsed.api_key.scopes, parsed.api_key.status, parsed.api_key.user, parsed.api_key.prefix],
      [null, 'active', 'ops', parsed.key.slice(0, 12)],
    );

    const listed = await run(dir, ['apikey', 'list', '--json']);
    assert.equal(listed.code, 0, listed.stderr);
    const keys = (JSON.parse(listed.stdout) as { api_keys: Array<{ id: string; name: string; scopes: string[] | null; expires_at: string | null }> }).api_keys;
    assert.deepEqual(
      keys.map((entry) => [entry.name, entry.scopes]),
      [
        ['json one', null],
        ['nightly backup', ['jobs:read', 'jobs:write']],
      ],
    );
    assert.ok(keys[1]?.expires_at !== null);
    for (const secret of [key, parsed.key]) assert.equal(listed.stdout.includes(secret.slice(12)), false);
    const table = await run(dir, ['apikey', 'list', '--user', 'ops']);
    assert.match(table.stdout, /^ID\s+USER\s+NAME\s+PREFIX\s+STATUS\s+SCOPES\s+EXPIRES\s+LAST USED\n/);

    const dbFiles = (await readdir(dir)).filter((name) => name.startsWith('disk2iso.db'));
    const onDisk = Buffer.concat(await Promise.all(dbFiles.map((name) => readFile(join(dir, name)))));
    assert.equal(onDisk.includes(key.slice(12)), false, 'the key is nowhere in the database files');

    const id = keys[1]?.id ?? '';
    await withService(dir, async (auth) => {
      const principal = await auth.authenticateRequest({ apiKeyHeader: key });
      assert.deepEqual([...(principal?.permissions ?? [])], ['jobs:read', 'jobs:write']);
      const revoked = await run(dir, ['apikey', 'revoke', id]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal(revoked.stdout, `Revoked ${id} "nightly backup" of ops.\n`);
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: key }), null);
      const again = await run(dir, ['apikey', 'revoke', id]);
      assert.equal(again.code, 2, again.stderr);
      assert.match(again.stderr, /already revoked/);

      const audited = (await auth.audit.list({ eventType: 'api_key', order: 'asc' })).items;
      assert.deepEqual(
        audited.map((entry) => [entry.action, entry.user, entry.ip_address]),
        [
          ['create', cliUser, 'local'],
          ['create', cliUser, 'local'],
          ['revoke', cliUser, 'local'],
        ],
      );
    });
  });

  it("refuses API keys beyond the owner's rights, unknown scopes and owners, and unreadable expiry", async () => {
    const dir = await dataDir();
    assert.equal((await run(dir, ['user', 'add', 'vic', '--role', 'viewer', '--password-stdin'], 'Vics-passw0rd-12\n')).code, 0);
    const cases: Array<[string[], RegExp]> = [
      [['--user', 'vic', '--name', 'x', '--scopes', 'jobs:write'], /Scope\(s\) jobs:write exceed the rights of viewer vic/],
      [['--user', 'vic', '--name', 'x', '--scopes', 'jobs:read,everything'], /Unknown scope\(s\) everything/],
      [['--user', 'vic', '--name', 'x', '--scopes', ','], /Give at least one scope/],
      [['--user', 'nobody', '--name', 'x'], /No user named nobody/],
      [['--user', 'vic', '--name', 'x', '--expires', 'soon'], /--expires takes a duration like 30d/],
      [['--user', 'vic', '--name', 'x', '--expires', '2001-01-01'], /must expire in the future/],
    ];
    for (const [args, message] of cases) {
      const result = await run(dir, ['apikey', 'create', ...args]);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '');
    }
    const revokeUnknown = await run(dir, ['apikey', 'revoke', 'key_00000000000000000000']);
    assert.equal(revokeUnknown.code, 2, revokeUnknown.stderr);
  });

  it('creates a key allowed to manage keys, and revokes it with the keys made with it', async () => {
    const dir = await dataDir();
    assert.equal((await run(dir, ['user', 'add', 'ops', '--role', 'operator', '--password-stdin'], 'Ops-passw0rd-123\n')).code, 0);
    const created = await run(dir, [
      'apikey',
      'create',
      '--user',
      'ops',
      '--name',
      'automation',
      '--scopes',
      'jobs:read,keys:manage',
      '--expires',
      '1d',
      '--json',
    ]);
    assert.equal(created.code, 0, created.stderr);
    const parent = JSON.parse(created.stdout) as { key: string; api_key: { id: string; scopes: string[]; parent_id: string | null } };
    assert.deepEqual([parent.api_key.scopes, parent.api_key.parent_id], [['jobs:read', 'keys:manage'], null]);

    await withService(dir, async (auth) => {
      const principal = await auth.authenticateRequest({ apiKeyHeader: parent.key });
      assert.ok(principal?.expiresAt !== undefined);
      const child = await auth.apiKeys.create(
        { user: 'ops', name: 'child', scopes: ['jobs:read'], expiresAt: new Date(principal.expiresAt) },
        { kind: 'request', principal, client: CLIENT },
      );
      const listed = await run(dir, ['apikey', 'list', '--json']);
      const keys = (JSON.parse(listed.stdout) as { api_keys: Array<{ id: string; parent_id: string | null }> }).api_keys;
      assert.deepEqual(
        keys.map((key) => [key.id, key.parent_id]),
        [
          [child.record.id, parent.api_key.id],
          [parent.api_key.id, null],
        ],
      );

      const revoked = await run(dir, ['apikey', 'revoke', parent.api_key.id]);
      assert.equal(revoked.code, 0, revoked.stderr);
      assert.equal(revoked.stdout, `Revoked ${parent.api_key.id} "automation" of ops, and 1 key(s) created with it: ${child.record.id}.\n`);
      assert.equal(await auth.authenticateRequest({ apiKeyHeader: child.key }), null, 'the child stopped working in the service process too');
    });
  });

  it('reads expiry as a duration or an ISO 8601 date', () => {
    const now = new Date('2026-01-15T10:00:00.000Z');
    assert.equal(parseExpiry('12h', now).toISOString(), '2026-01-15T22:00:00.000Z');
    assert.equal(parseExpiry('30d', now).toISOString(), '2026-02-14T10:00:00.000Z');
    assert.equal(parseExpiry('2w', now).toISOString(), '2026-01-29T10:00:00.000Z');
    assert.equal(parseExpiry('2026-06-01', now).toISOString(), '2026-06-01T00:00:00.000Z');
    assert.equal(parseExpiry('2026-06-01T12:30:00+02:00', now).toISOString(), '2026-06-01T10:30:00.000Z');
    for (const text of ['', '30', '30m', '1y', 'tomorrow', '2026-13-45', '-1d']) assert.throws(() => parseExpiry(text, now), { code: 'invalid_expiry' }, text);
  });

  it('prompts twice without echo on a terminal', async () => {
    const dir = await dataDir();
    const password = 'Typed-at-a-tty-9';
    // script(1) (util-linux, essential on Debian) gives the CLI a real pseudo-terminal; the command
    // string only holds paths this test made, checked to need no quoting.
    const command = [process.execPath, CLI_PATH, 'user', 'add', 'tina', '--role', 'viewer'];
    for (const part of command) assert.match(part, /^[\w./:-]+$/);
    const child = spawn('script', ['-q', '-e', '-c', command.join(' '), '/dev/null'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', DISK2ISO_DATA_DIR: dir, TERM: 'dumb' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let output = '';
    const waiters: Array<{ text: string; resolve: () => void }> = [];
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      for (const waiter of waiters.splice(0)) {
        if (output.includes(waiter.text)) waiter.resolve();
        else waiters.push(waiter);
      }
    });
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    const prompt = (text: string) =>
      new Promise<void>((resolve, reject) => {
        if (output.includes(text)) return resolve();
        waiters.push({ text, resolve });
        void exited.then(() => reject(new Error(`exited before prompting ${JSON.stringify(text)}: ${output}`)));
      });
    try {
      await prompt('New password for tina: ');
      child.stdin.write(`${password}\r`);
      await prompt('Repeat it: ');
      child.stdin.write(`${password}\r`);
      assert.equal(await exited, 0, output);
    } finally {
      child.stdin.end();
      child.kill();
    }
    assert.match(output, /Added viewer tina\./);
    assert.equal(output.includes(password), false, 'the password never appeared on the terminal');
    await withService(dir, async (auth) => {
      assert.equal((await auth.login('tina', password, CLIENT)).principal.name, 'tina');
    });
  });

  it('writes the database and signing key 0600 and nothing world-writable', async () => {
    const dir = await dataDir();
    assert.equal((await run(dir, ['user', 'add', 'admin', '--role', 'admin', '--password-stdin'], `${ADMIN_PASSWORD}\n`)).code, 0);
    await withService(dir, async (auth) => {
      await auth.tokens.issueForPassword('admin', ADMIN_PASSWORD, CLIENT);
    });
    const names = await readdir(dir);
    assert.ok(names.includes('disk2iso.db'));
    assert.ok(names.includes('jwt.key'));
    for (const name of names) {
      const mode = (await stat(join(dir, name))).mode & 0o777;
      if (name === 'disk2iso.db' || name.startsWith('disk2iso.db-') || name === 'jwt.key') assert.equal(mode, 0o600, name);
      assert.equal(mode & 0o002, 0, `${name} is not world-writable`);
    }
  });
});
