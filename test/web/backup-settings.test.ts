import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { databaseFile, openDatabase } from '../../src/db/database.js';
import { runScheduledBackup } from '../../src/system/backup.js';
import { EMBEDDED_ONLY_FIELDS, type PageForm, pageForms, saveConfigForm } from './support/config-page.js';
import { type WebTestServer, startWebServerOn } from './support/web-server.js';

/**
 * The backup settings of the configuration page have the effects their help texts promise. Backups
 * copy the embedded SQLite file, so this walk runs on that alone (an embedded data dir, not the
 * engine switch); settings-effects.test.ts walks every other field on both engines.
 */
describe('the backup settings on the configuration page, with the state in the embedded file', () => {
  let server: WebTestServer;
  let dataDir: string;
  let backupForm: PageForm;

  const openItsDatabase = () => openDatabase({ file: databaseFile(dataDir) });
  const formOf = async (): Promise<PageForm | undefined> =>
    pageForms((await server.send('GET', '/config')).body).find((form) => form.action === '/config/backup');

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'disk2iso-web-backup-'));
    server = await startWebServerOn(
      { dataDir, databaseEnv: {}, openDatabase: openItsDatabase, remove: () => rm(dataDir, { recursive: true, force: true }) },
      { listen: false },
    );
    const form = await formOf();
    assert.ok(form !== undefined, 'the page has a backup form');
    backupForm = form;
  });
  afterEach(async () => {
    // Each test starts from the settings the page showed at first.
    const restored = await server.send('POST', '/config/backup', { form: Object.fromEntries(backupForm.values) });
    assert.equal(restored.status, 303, restored.body.slice(0, 300));
  });
  after(async () => {
    await server?.close();
  });

  it('offers exactly the fields of the embedded database', () => {
    assert.deepEqual([...backupForm.names].sort(), [...EMBEDDED_ONLY_FIELDS].sort());
  });

  it('backup__interval_hours decides when the next scheduled backup is due, 0 never', async () => {
    // The service's backup timer runs runScheduledBackup with its own config, which the page changed.
    const database = await openItsDatabase();
    try {
      const later = new Date(Date.now() + 2 * 3_600_000);
      assert.equal((await runScheduledBackup({ config: server.config, database, version: 'walk', now: later })).created, null, 'none due within 24 hours');
      await saveConfigForm(server, 'backup', { backup__interval_hours: '1' });
      assert.notEqual((await runScheduledBackup({ config: server.config, database, version: 'walk', now: later })).created, null, 'due after 1 hour');
      await saveConfigForm(server, 'backup', { backup__interval_hours: '0' });
      const never = new Date(Date.now() + 100 * 24 * 3_600_000);
      assert.equal((await runScheduledBackup({ config: server.config, database, version: 'walk', now: never })).created, null, '0: none');
    } finally {
      await database.close();
    }
  });

  it('backup__keep_days decides which backups a scheduled run removes', async () => {
    const database = await openItsDatabase();
    try {
      const dir = server.config.backup.dir;
      const tenDaysAgo = new Date(Date.now() - 10 * 24 * 3_600_000);
      for (const name of await readdir(dir)) await utimes(join(dir, name), tenDaysAgo, tenDaysAgo);
      const old = await readdir(dir);
      assert.ok(old.length > 0, 'the service made a backup at its start');
      const kept = await runScheduledBackup({ config: server.config, database, version: 'walk' });
      assert.deepEqual(kept.removed, [], '10 days old is kept for 30 days');
      await saveConfigForm(server, 'backup', { backup__keep_days: '5' });
      const { removed } = await runScheduledBackup({ config: server.config, database, version: 'walk' });
      assert.ok(removed.length > 0, 'older than 5 days is removed');
      assert.ok(removed.every((file) => old.includes(basename(file))));
    } finally {
      await database.close();
    }
  });
});
