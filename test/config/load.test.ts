import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig, nodeNameOf, settingLeaves } from '../../src/config/load.js';
import { ValidationError } from '../../src/errors.js';

describe('loadConfig', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'disk2iso-config-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('uses the specification defaults with no file, environment or flags', () => {
    const config = loadConfig({ dataDir: dir, env: {} });
    assert.equal(config.data_dir, dir);
    assert.equal(config.imaging.read_attempts, 5);
    assert.deepEqual(config.imaging.checksums, ['md5', 'sha256']);
    assert.equal(config.imaging.verify, true);
    assert.equal(config.storage.stop_threshold_percent, 95);
    assert.equal(config.storage.warn_threshold_percent, 90);
    assert.equal(config.storage.output_dir, join(dir, 'output'));
    assert.equal(config.server.host, '127.0.0.1');
    assert.equal(config.server.port, 8080);
    assert.equal(config.config_file, null);
  });

  it('layers defaults < config file < environment < --set', async () => {
    const file = join(dir, 'layers.json');
    await writeFile(file, JSON.stringify({ imaging: { read_attempts: 2, verify: false }, storage: { output_dir: 'images' } }));
    const fromFile = loadConfig({ dataDir: dir, configFile: file, env: {} });
    assert.equal(fromFile.imaging.read_attempts, 2);
    assert.equal(fromFile.imaging.verify, false);
    assert.equal(fromFile.storage.output_dir, join(dir, 'images'), 'relative output dirs resolve against the data dir');

    const fromEnv = loadConfig({
      dataDir: dir,
      configFile: file,
      env: { DISK2ISO_IMAGING_READ_ATTEMPTS: '7', DISK2ISO_EXTRA_DEVICES: '/dev/loop1, /srv/a.iso', DISK2ISO_OUTPUT_DIR: '/srv/out' },
    });
    assert.equal(fromEnv.imaging.read_attempts, 7);
    assert.equal(fromEnv.imaging.verify, false, 'keys the environment does not name keep the file value');
    assert.deepEqual(fromEnv.drives.extra, ['/dev/loop1', '/srv/a.iso']);
    assert.equal(fromEnv.storage.output_dir, '/srv/out');

    const fromFlag = loadConfig({
      dataDir: dir,
      configFile: file,
      env: { DISK2ISO_IMAGING_READ_ATTEMPTS: '7' },
      overrides: ['imaging.read_attempts=1', 'imaging.checksums=sha1'],
    });
    assert.equal(fromFlag.imaging.read_attempts, 1);
    assert.deepEqual(fromFlag.imaging.checksums, ['sha1']);
  });

  it('reads DISK2ISO_DATA_DIR and DISK2ISO_CONFIG, and config.json in the data dir', async () => {
    await writeFile(join(dir, 'config.json'), JSON.stringify({ server: { port: 9999 } }));
    const config = loadConfig({ env: { DISK2ISO_DATA_DIR: dir } });
    assert.equal(config.data_dir, dir);
    assert.equal(config.server.port, 9999);
    assert.equal(config.config_file, join(dir, 'config.json'));
    await rm(join(dir, 'config.json'));
  });

  const rejects = (name: string, options: Parameters<typeof loadConfig>[0], pattern: RegExp): void => {
    it(`rejects ${name} with a message naming it`, () => {
      assert.throws(
        () => loadConfig({ dataDir: dir, env: {}, ...options }),
        (error: unknown) => {
          assert.ok(error instanceof ValidationError);
          assert.match(error.message, pattern);
          return true;
        },
      );
    });
  };
  rejects('a bad environment value', { env: { DISK2ISO_IMAGING_READ_ATTEMPTS: 'many' } }, /imaging\.read_attempts .*DISK2ISO_IMAGING_READ_ATTEMPTS/);
  rejects('an out-of-range flag value', { overrides: ['storage.stop_threshold_percent=150'] }, /storage\.stop_threshold_percent .*--set/);
  rejects('an unknown checksum', { overrides: ['imaging.checksums=md5,crc32'] }, /imaging\.checksums/);
  rejects('an unknown environment variable', { env: { DISK2ISO_IMAGING_READ_ATTEMTPS: '3' } }, /unknown environment variable DISK2ISO_IMAGING_READ_ATTEMTPS/);
  rejects('an unknown --set key', { overrides: ['imaging.speed=3'] }, /unknown key imaging\.speed/);
  rejects('a --set without =', { overrides: ['imaging.read_attempts'] }, /KEY=VALUE/);

  it('rejects an unknown key and a bad value in the config file, naming the file', async () => {
    const unknown = join(dir, 'unknown.json');
    await writeFile(unknown, JSON.stringify({ imaging: { read_attempts: 3, turbo: true } }));
    assert.throws(() => loadConfig({ dataDir: dir, configFile: unknown, env: {} }), /unknown key imaging\.turbo \(in .*unknown\.json\)/);
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ imaging: { verify: 'yes' } }));
    assert.throws(() => loadConfig({ dataDir: dir, configFile: bad, env: {} }), /imaging\.verify .*config file .*bad\.json/);
    const broken = join(dir, 'broken.json');
    await writeFile(broken, '{ "imaging": ');
    assert.throws(() => loadConfig({ dataDir: dir, configFile: broken, env: {} }), /cannot read .*broken\.json/);
  });

  it('still starts with imaging.compression, which an older version had, in the config file, the environment or --set', async () => {
    const older = join(dir, 'older.json');
    await writeFile(older, JSON.stringify({ imaging: { compression: 'none', read_attempts: 4 } }));
    const config = loadConfig({ dataDir: dir, configFile: older, env: { DISK2ISO_IMAGING_COMPRESSION: 'none' }, overrides: ['imaging.compression=none'] });
    assert.equal(config.imaging.read_attempts, 4);
    assert.ok(!('compression' in config.imaging), 'and ignores it');
  });

  it('still starts with the webhook settings an older version had, which webhook endpoints replaced', async () => {
    const older = join(dir, 'older-webhook.json');
    await writeFile(older, JSON.stringify({ notifications: { webhook_enabled: true, webhook_url: 'https://hooks.example.org/x', smtp_port: 2525 } }));
    const config = loadConfig({
      dataDir: dir,
      configFile: older,
      env: { DISK2ISO_NOTIFICATIONS_WEBHOOK_URL: 'https://hooks.example.org/y' },
      overrides: ['notifications.webhook_enabled=false'],
    });
    assert.equal(config.notifications.smtp_port, 2525);
    assert.ok(!('webhook_url' in config.notifications) && !('webhook_enabled' in config.notifications), 'and ignores them');
  });

  it('derives one environment name per setting', () => {
    const names = settingLeaves().map((leaf) => leaf.envName);
    assert.ok(names.includes('DISK2ISO_STORAGE_OUTPUT_DIR'));
    assert.ok(names.includes('DISK2ISO_IMAGING_READ_ATTEMPTS'));
    assert.equal(new Set(names).size, names.length);
  });

  it('names the node after the host unless cluster.node_name says otherwise, and refuses a name that could leave its place', () => {
    assert.equal(loadConfig({ dataDir: dir, env: {} }).cluster.node_name, nodeNameOf(hostname()));
    assert.equal(loadConfig({ dataDir: dir, env: { DISK2ISO_CLUSTER_NODE_NAME: 'tower-2' } }).cluster.node_name, 'tower-2');
    for (const bad of ['../etc', 'Tower', 'tower.lan', 'tower/2', '-tower', 'a'.repeat(64)]) {
      assert.throws(
        () => loadConfig({ dataDir: dir, env: { DISK2ISO_CLUSTER_NODE_NAME: bad } }),
        (error: unknown) => error instanceof ValidationError && /cluster\.node_name/.test(error.message),
        bad,
      );
    }
    assert.deepEqual(['Tower-2.example.org', 'NAS_01', '.', '-x'].map(nodeNameOf), ['tower-2', 'nas-01', 'node', 'x']);
  });

  it('refuses an offline limit that does not exceed the heartbeat, naming both', () => {
    const config = loadConfig({ dataDir: dir, env: {} });
    assert.deepEqual([config.cluster.heartbeat_seconds, config.cluster.offline_after_seconds], [5, 15]);
    assert.throws(
      () => loadConfig({ dataDir: dir, env: { DISK2ISO_CLUSTER_HEARTBEAT_SECONDS: '20' } }),
      (error: unknown) =>
        error instanceof ValidationError &&
        error.message ===
          'config: cluster.offline_after_seconds (15) must exceed cluster.heartbeat_seconds (20) (from environment DISK2ISO_CLUSTER_HEARTBEAT_SECONDS)',
    );
    assert.throws(
      () => loadConfig({ dataDir: dir, env: {}, overrides: ['cluster.offline_after_seconds=5'] }),
      /offline_after_seconds \(5\) must exceed cluster\.heartbeat_seconds \(5\) \(from --set/,
    );
    assert.equal(loadConfig({ dataDir: dir, env: {}, overrides: ['cluster.offline_after_seconds=6'] }).cluster.offline_after_seconds, 6);
  });
});
