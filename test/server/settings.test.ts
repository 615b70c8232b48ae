import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { type SettingLeaf, loadConfig, packageRoot, settingLeaves } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { createSettingsRepository } from '../../src/db/settings-repository.js';
import type { JsonValue } from '../../src/json.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { SECRET_MASK, isSecretLeaf, isServerOnlyLeaf, maskSecrets, maskUrlCredentials } from '../../src/system/settings.js';
import { type TestServer, api, createAdminKey, startTestServer, testEnv, useApiKey, waitFor } from '../http/support.js';
import { attachTestDatabase, detachTestDatabase, openDataDirDatabase } from '../support/database.js';
import { makeIso } from '../tools/iso.js';

describe('settings through the API: view, change, store, apply, survive a restart', () => {
  let work: string;
  let dataDir: string;
  let isoPath: string;
  let service: TestServer | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-settings-'));
    dataDir = join(work, 'data');
    await attachTestDatabase(dataDir);
    isoPath = (await makeIso({ dir: work, label: 'SETTINGS', dataMiB: 1, files: 1 })).path;
  });
  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
    await detachTestDatabase(dataDir);
  });

  async function stop(): Promise<void> {
    await service?.close();
    service = undefined;
  }
  /** Starts the service on the shared data dir, first stopping one a failed test may have left running. */
  async function start(env: Record<string, string> = {}): Promise<TestServer> {
    await stop();
    service = await startTestServer({ devices: [isoPath], dataDir, env });
    return service;
  }
  async function createAndFinishJob(url: string, deviceId: string): Promise<{ options: { read_attempts: number; checksums: string[] }; output_file: string }> {
    const created = await api(url, 'POST', '/api/v1/jobs', { device: deviceId });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    await waitFor('the job to finish', async () => ['completed', 'failed'].includes((await api(url, 'GET', `/api/v1/jobs/${created.body.id}`)).body.status));
    return created.body;
  }

  it('shows every setting with its source, applies changes at once, and says which need a restart', async () => {
    const { url } = await start();
    const deviceId = (await api(url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const initial = await api(url, 'GET', '/api/v1/system/config');
    assert.equal(initial.status, 200);
    assert.equal(initial.body.settings.imaging.read_attempts, 5);
    assert.equal(initial.body.sources['imaging.read_attempts'], 'default');
    assert.equal(initial.body.sources['drives.extra'], 'environment DISK2ISO_EXTRA_DEVICES');
    assert.ok(initial.body.fixed.includes('drives.extra'));
    assert.equal(initial.body.data_dir, dataDir);

    const changed = await api(url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 2, checksums: ['sha1'] }, storage: { output_dir: 'images' } });
    assert.equal(changed.status, 200, JSON.stringify(changed.body));
    assert.equal(changed.body.settings.imaging.read_attempts, 2);
    assert.deepEqual(changed.body.settings.imaging.checksums, ['sha1']);
    assert.equal(changed.body.settings.storage.output_dir, join(dataDir, 'images'), 'a relative output dir is relative to the data dir');
    assert.equal(changed.body.sources['imaging.read_attempts'], 'stored settings');
    assert.deepEqual(changed.body.restart_required, []);

    const job = await createAndFinishJob(url, deviceId);
    assert.equal(job.options.read_attempts, 2, 'new jobs use the new default');
    assert.deepEqual(job.options.checksums, ['sha1']);
    assert.equal(job.output_file, join(dataDir, 'images', 'SETTINGS.iso'));

    const restart = await api(url, 'PATCH', '/api/v1/system/config', { jobs: { max_running: 1 }, log: { level: 'warning' } });
    assert.equal(restart.status, 200);
    assert.deepEqual(restart.body.restart_required, ['jobs.max_running', 'log.level']);

    const logs = await api(url, 'GET', '/api/v1/logs?limit=1000');
    const messages = logs.body.logs.map((line: { message: string }) => line.message);
    assert.ok(messages.includes('setting imaging.read_attempts changed from 5 to 2'), messages.join('\n'));
    assert.ok(messages.some((message: string) => message.startsWith('setting jobs.max_running changed from 0 to 1 (takes effect after a restart)')));
  });

  it('keeps stored settings across a restart, below the environment', async () => {
    await stop();
    const { url } = await start();
    const config = await api(url, 'GET', '/api/v1/system/config');
    assert.equal(config.body.settings.imaging.read_attempts, 2);
    assert.equal(config.body.sources['imaging.read_attempts'], 'stored settings');
    assert.equal(config.body.settings.storage.output_dir, join(dataDir, 'images'));
    assert.equal(config.body.settings.jobs.max_running, 1);

    await stop();
    const fixed = await start({ DISK2ISO_IMAGING_READ_ATTEMPTS: '7' });
    const overridden = await api(fixed.url, 'GET', '/api/v1/system/config');
    assert.equal(overridden.body.settings.imaging.read_attempts, 7, 'the environment outranks stored settings');
    assert.equal(overridden.body.sources['imaging.read_attempts'], 'environment DISK2ISO_IMAGING_READ_ATTEMPTS');
    const refused = await api(fixed.url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 3 } });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.error.code, 'setting_fixed');
    assert.match(refused.body.error.message, /imaging\.read_attempts is set by environment DISK2ISO_IMAGING_READ_ATTEMPTS/);
    const unchanged = await api(fixed.url, 'GET', '/api/v1/system/config');
    assert.deepEqual(unchanged.body, overridden.body, 'a refused change changes nothing');
  });

  it('keeps the output directory inside the data dir or storage.output_roots, symlinks followed', async () => {
    const allowedRoot = join(work, 'nas');
    await mkdir(allowedRoot, { recursive: true });
    await symlink('/etc', join(dataDir, 'sneaky'));
    const { url } = await start({ DISK2ISO_STORAGE_OUTPUT_ROOTS: allowedRoot });
    const refused: Array<[unknown, number, string]> = [
      [{ storage: { output_dir: '/etc' } }, 400, 'output_dir_not_allowed'],
      [{ storage: { output_dir: '../../../../etc/cron.d' } }, 400, 'output_dir_not_allowed'],
      [{ storage: { output_dir: 'sneaky/cron.d' } }, 400, 'output_dir_not_allowed'],
      [{ storage: { output_dir: `${allowedRoot}/../elsewhere` } }, 400, 'output_dir_not_allowed'],
      [{ storage: { output_roots: ['/'] } }, 409, 'setting_server_only'],
    ];
    const before = (await api(url, 'GET', '/api/v1/system/config')).body.settings.storage.output_dir;
    for (const [patch, status, code] of refused) {
      const response = await api(url, 'PATCH', '/api/v1/system/config', patch);
      assert.equal(response.status, status, JSON.stringify(patch));
      assert.equal(response.body.error.code, code, JSON.stringify(patch));
    }
    assert.equal((await api(url, 'GET', '/api/v1/system/config')).body.settings.storage.output_dir, before, 'nothing changed');
    const view = await api(url, 'GET', '/api/v1/system/config');
    assert.ok(view.body.fixed.includes('storage.output_roots'), 'the pages show it read-only');
    const moved = await api(url, 'PATCH', '/api/v1/system/config', { storage: { output_dir: join(allowedRoot, 'archive') } });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    assert.equal(moved.body.settings.storage.output_dir, join(allowedRoot, 'archive'));
    await stop();
  });

  it('ignores a stored value that no longer validates, and says so in the log', async () => {
    await stop();
    const database = await openDataDirDatabase(dataDir);
    try {
      await createSettingsRepository(database).set({ 'imaging.read_attempts': 'lots', 'imaging.vanished_setting': true });
    } finally {
      await database.close();
    }
    const { url } = await start();
    const config = await api(url, 'GET', '/api/v1/system/config');
    assert.equal(config.body.settings.imaging.read_attempts, 5);
    assert.equal(config.body.sources['imaging.read_attempts'], 'default');
    const warnings = await api(url, 'GET', '/api/v1/logs?level=warning');
    const messages = warnings.body.logs.map((line: { message: string }) => line.message);
    assert.ok(
      messages.some((message: string) => message.startsWith('stored setting imaging.read_attempts ignored')),
      messages.join('\n'),
    );
    assert.ok(messages.some((message: string) => message.startsWith('stored setting imaging.vanished_setting ignored')));
  });
});

describe('secret masking', () => {
  const leaf = (path: string, schema: SettingLeaf['schema'] & { writeOnly?: boolean; format?: string } = { type: 'string' }): SettingLeaf => ({
    path,
    schema,
    envName: `DISK2ISO_${path.replace(/\./g, '_').toUpperCase()}`,
  });

  it('recognises credentials by schema marks and by name', () => {
    assert.equal(isSecretLeaf(leaf('notify.smtp_password')), true);
    assert.equal(isSecretLeaf(leaf('notify.webhook_secret')), true);
    assert.equal(isSecretLeaf(leaf('mqtt.token')), true);
    assert.equal(isSecretLeaf(leaf('notify.key', { type: 'string', writeOnly: true })), true);
    assert.equal(isSecretLeaf(leaf('notify.auth', { type: 'string', format: 'password' })), true);
    assert.equal(isSecretLeaf(leaf('notify.email')), false);
    assert.equal(isSecretLeaf(leaf('imaging.read_attempts', { type: 'integer' })), false);
  });

  it('shows set secrets as a mask and leaves everything else alone', () => {
    const settings = { notify: { smtp_password: 'hunter2', webhook_secret: '', email: 'a@example.org' }, imaging: { read_attempts: 5 } };
    const leaves = [leaf('notify.smtp_password'), leaf('notify.webhook_secret'), leaf('notify.email'), leaf('imaging.read_attempts', { type: 'integer' })];
    const masked = maskSecrets(settings, leaves);
    assert.deepEqual(masked, { notify: { smtp_password: SECRET_MASK, webhook_secret: '', email: 'a@example.org' }, imaging: { read_attempts: 5 } });
    assert.equal(settings.notify.smtp_password, 'hunter2', 'the original is untouched');
  });
});

/** What a hostile admin would send for each server-only setting; its keys are the decision (docs/security.md says why). */
const HOSTILE_SERVER_ONLY: Record<string, (work: string) => JsonValue> = {
  'storage.output_roots': () => ['/'],
  // Every *.iso on the host would become adoptable, downloadable and deletable.
  'archive.adopt_roots': () => ['/'],
  'drives.extra': (work) => [join(work, 'host-secret')],
  'server.host': () => '0.0.0.0',
  'server.port': () => 1,
  'server.socket': (work) => join(work, 'elsewhere.sock'),
  'security.trusted_proxies': () => ['0.0.0.0/1', '128.0.0.0/1'],
  'security.audit_retention_days': () => 1,
  // Archives of password hashes and the signing key, written into a world-readable folder.
  'backup.dir': () => '/tmp',
  'metrics.allow_addresses': () => ['0.0.0.0/0', '::/0'],
  // Webhooks into the LAN or the host: whoever may edit webhooks could probe and call internal services.
  'notifications.allow_private_destinations': () => true,
  // A host file read as certificates: a way to learn whether it exists and what it holds from the error.
  'notifications.smtp_ca_file': () => '/etc/shadow',
  // Push messages to the cloud metadata service or the host itself, under a name the admin allowed.
  'notifications.push_allowed_hosts': () => ['169.254.169.254', 'localhost'],
  // The same host file, read as certificates for push services.
  'notifications.push_ca_file': () => '/etc/shadow',
  // Another node's name: this process would take over its entry in the shared list of nodes.
  'cluster.node_name': () => 'another-node',
  // A heartbeat so rare, or a limit so long, that a dead node shows as online for an hour.
  'cluster.heartbeat_seconds': () => 300,
  'cluster.offline_after_seconds': () => 3600,
  'cluster.shared_output': () => true,
  'cluster.secret': () => 'an-admin-s-own-key-of-32-characters-or-more',
  'cluster.internal_url': () => 'http://attacker.example:8080',
  // Users, keys and the audit trail moved to a database of the admin's choosing.
  'database.url': () => 'postgres://loot:loot@attacker.example.org/loot',
};

function nested(key: string, value: JsonValue): Record<string, Record<string, JsonValue>> {
  const [section = '', name = ''] = key.split('.');
  return { [section]: { [name]: value } };
}

async function storeSettings(dataDir: string, entries: Record<string, JsonValue>): Promise<void> {
  const database = await openDataDirDatabase(dataDir);
  try {
    await createSettingsRepository(database).set(entries);
  } finally {
    await database.close();
  }
}

async function storedSetting(dataDir: string, key: string): Promise<JsonValue | undefined> {
  const database = await openDataDirDatabase(dataDir);
  try {
    return (await createSettingsRepository(database).get(key))?.value;
  } finally {
    await database.close();
  }
}

describe('settings that name host paths, devices or the listening address are set on the server only', () => {
  let work: string;
  let dataDir: string;
  let isoPath: string;
  let hostSecret: string;
  let configFile: string;
  let logFile: string;
  let running: { server: RunningServer; url: string; config: Config } | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-server-only-'));
    dataDir = join(work, 'data');
    await attachTestDatabase(dataDir);
    await mkdir(dataDir);
    isoPath = (await makeIso({ dir: work, label: 'ALLOWED', dataMiB: 1, files: 1 })).path;
    hostSecret = join(work, 'host-secret');
    await writeFile(hostSecret, 'root:$6$hash:19000:0:99999:7:::\n', { mode: 0o600 });
    // Drives and the port come from the config file, not the environment, so nothing but
    // server-only-ness stands between a PATCH and them.
    configFile = join(work, 'config.json');
    await writeFile(configFile, JSON.stringify({ drives: { extra: [isoPath] }, server: { port: 0 }, imaging: { read_attempts: 3 } }));
    logFile = join(work, 'stdout.log');
  });
  after(async () => {
    await running?.server.close('test finished');
    await rm(work, { recursive: true, force: true });
    await detachTestDatabase(dataDir);
  });

  /** The service as `disk2iso serve --config FILE` runs it, its process log (stdout) going to a file. */
  async function start(): Promise<{ url: string; config: Config }> {
    await running?.server.close('restart');
    const env = testEnv(dataDir, []);
    delete env['DISK2ISO_EXTRA_DEVICES'];
    const config = loadConfig({ configFile, env });
    const log = pino({ level: 'info' }, pino.destination({ dest: logFile, sync: true, append: true }));
    const key = await createAdminKey(dataDir);
    const server = await startServer({ config, log, version: 'test' });
    const url = server.url ?? '';
    useApiKey(url, key);
    running = { server, url, config };
    return running;
  }

  const deviceListing = async (url: string): Promise<string[]> =>
    (await api(url, 'GET', '/api/v1/devices')).body.devices.map((device: { path: string }) => device.path);

  it('marks exactly the settings docs/security.md gives as server-only in the schema', () => {
    const serverOnly = settingLeaves()
      .filter(isServerOnlyLeaf)
      .map((leaf) => leaf.path);
    assert.deepEqual(serverOnly.sort(), Object.keys(HOSTILE_SERVER_ONLY).sort());
  });

  it('refuses every one of them over HTTP, so no host file becomes a drive', async () => {
    const { url } = await start();
    assert.deepEqual(await deviceListing(url), [isoPath]);
    const before = (await api(url, 'GET', '/api/v1/system/config')).body;
    for (const [key, value] of Object.entries(HOSTILE_SERVER_ONLY)) {
      const refused = await api(url, 'PATCH', '/api/v1/system/config', nested(key, value(work)));
      assert.equal(refused.status, 409, `${key}: ${JSON.stringify(refused.body)}`);
      assert.equal(refused.body.error.code, 'setting_server_only', key);
      assert.ok(before.fixed.includes(key), `${key} is listed as fixed, so the pages show it read-only`);
    }
    const together = await api(url, 'PATCH', '/api/v1/system/config', { imaging: { read_attempts: 4 }, drives: { extra: [isoPath, hostSecret] } });
    assert.equal(together.status, 409, 'a change that includes one changes nothing');
    assert.deepEqual((await api(url, 'GET', '/api/v1/system/config')).body, before);
    assert.deepEqual(await deviceListing(url), [isoPath], 'the host file is no drive');
    assert.equal(await storedSetting(dataDir, 'drives.extra'), undefined, 'nothing was stored');
  });

  it('ignores and reports values an older version stored for them, and output dirs outside the allowed folders', async () => {
    await running?.server.close('restart');
    running = undefined;
    const hostile = Object.fromEntries(Object.entries(HOSTILE_SERVER_ONLY).map(([key, value]) => [key, value(work)]));
    const elsewhere = join(work, 'elsewhere');
    await storeSettings(dataDir, { ...hostile, 'storage.output_dir': elsewhere, 'imaging.read_attempts': 9 });
    const { url, config } = await start();

    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, 'it listens where the server says, not at a stored address or socket');
    assert.deepEqual(await deviceListing(url), [isoPath], 'the stored host file is no drive');
    const view = (await api(url, 'GET', '/api/v1/system/config')).body;
    assert.equal(view.settings.server.host, '127.0.0.1');
    assert.equal(view.sources['server.host'], 'default');
    assert.equal(view.sources['drives.extra'], `config file ${configFile}`);
    assert.deepEqual(view.settings.security.trusted_proxies, []);
    assert.equal(view.settings.security.audit_retention_days, 365);
    assert.equal(view.settings.storage.output_dir, join(dataDir, 'output'));
    assert.equal(config.storage.output_dir, join(dataDir, 'output'));
    assert.equal(view.settings.imaging.read_attempts, 9, 'other stored settings still sit above the config file');
    assert.equal(view.sources['imaging.read_attempts'], 'stored settings');

    const warnings = (await api(url, 'GET', '/api/v1/logs?level=warning&limit=1000')).body.logs.map((line: { message: string }) => line.message);
    for (const key of Object.keys(HOSTILE_SERVER_ONLY)) {
      assert.ok(
        warnings.some((message: string) => message.startsWith(`stored setting ${key} ignored: it can only be set on the server`)),
        `${key}:\n${warnings.join('\n')}`,
      );
    }
    assert.ok(
      warnings.some((message: string) => message.startsWith(`stored setting storage.output_dir ignored: storage.output_dir ${elsewhere} is outside`)),
      warnings.join('\n'),
    );
  });

  it('lists every setting with its decision in docs/security.md', async () => {
    const doc = await readFile(join(packageRoot(), 'docs', 'security.md'), 'utf8');
    const table = /<!-- settings:start -->([\s\S]*?)<!-- settings:end -->/.exec(doc)?.[1] ?? '';
    const rows = new Map([...table.matchAll(/^\| `([a-z_.]+)` \| (server only|run time) \|/gm)].map((match) => [match[1], match[2]]));
    const expected = new Map(settingLeaves().map((leaf) => [leaf.path, isServerOnlyLeaf(leaf) ? 'server only' : 'run time']));
    assert.deepEqual(rows, expected);
  });
});

describe('credentials in URLs', () => {
  it('masks user info and query values, and leaves the rest of the text as it was', () => {
    const cases: Array<[string, string]> = [
      ['https://user:pass@hooks.example.org/a/b', `https://${SECRET_MASK}@hooks.example.org/a/b`],
      ['https://token@hooks.example.org/', `https://${SECRET_MASK}@hooks.example.org/`],
      ['https://us%40er:p@ss@Hooks.Example.org:8443/x', `https://${SECRET_MASK}@Hooks.Example.org:8443/x`],
      [
        'http://hooks.example.org/x?token=abc&sig=d%20e&flag&empty=#frag',
        `http://hooks.example.org/x?token=${SECRET_MASK}&sig=${SECRET_MASK}&${SECRET_MASK}&empty=#frag`,
      ],
      ['https:///user:pass@host/', `https:///${SECRET_MASK}@host/`],
      ['https:\\\\user:pass@host\\path', `https:\\\\${SECRET_MASK}@host\\path`],
      ['https://@host/', 'https://@host/'],
      ['https://hooks.example.org/path/@not-user-info', 'https://hooks.example.org/path/@not-user-info'],
      ['https://hooks.example.org/plain', 'https://hooks.example.org/plain'],
      ['/srv/images', '/srv/images'],
      ['archive@example.org', 'archive@example.org'],
      ['', ''],
    ];
    for (const [given, shown] of cases) assert.equal(maskUrlCredentials(given), shown, given);
  });

  it('never leaves credentials a URL parser would send', () => {
    for (const given of [
      'https://u:secretpw@host/',
      'https:///u:secretpw@host/',
      'https:\\\\u:secretpw@host/',
      'https://u:secretpw@host\\@x/',
      'HTTPS://u:secretpw@host?q=secretpw',
    ]) {
      const parsed = new URL(given);
      assert.equal(parsed.password, 'secretpw', `the parser reads a password from ${given}`);
      assert.ok(!maskUrlCredentials(given).includes('secretpw'), given);
    }
  });
});
