import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SettingLeaf } from '../../src/config/load.js';
import { databaseFile, openDatabase } from '../../src/db/database.js';
import { createSettingsRepository } from '../../src/db/settings-repository.js';
import { SECRET_MASK, isSecretLeaf, maskSecrets } from '../../src/system/settings.js';
import { type TestServer, api, startTestServer, waitFor } from '../http/support.js';
import { makeIso } from '../tools/iso.js';

describe('settings through the API: view, change, store, apply, survive a restart', () => {
  let work: string;
  let dataDir: string;
  let isoPath: string;
  let service: TestServer | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-settings-'));
    dataDir = join(work, 'data');
    isoPath = (await makeIso({ dir: work, label: 'SETTINGS', dataMiB: 1, files: 1 })).path;
  });
  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
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
    const database = await openDatabase({ file: databaseFile(dataDir) });
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
    assert.ok(messages.some((message: string) => message.startsWith('stored setting imaging.read_attempts ignored')), messages.join('\n'));
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
