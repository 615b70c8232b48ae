import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createSettingsRepository } from '../../src/db/settings-repository.js';
import { manualClock, withDatabase } from './support.js';

describe('settings repository', () => {
  it('stores JSON values of every kind and returns them sorted by key', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const settings = createSettingsRepository(database, { now: clock.now });
      const values = {
        'imaging.read_attempts': 9,
        'imaging.verify': false,
        'imaging.checksums': ['md5', 'sha256'],
        'storage.output_dir': '/srv/images with spaces/"quoted"',
        'notify.smtp': { host: 'mail.example', port: 587 },
        'drives.extra': null,
      };
      const written = await settings.set(values, 'user_admin');
      assert.equal(written.length, 6);
      assert.ok(written.every((entry) => entry.updatedAt === '2026-01-15T10:00:00.000Z' && entry.updatedBy === 'user_admin'));

      const listed = await settings.list();
      assert.deepEqual(
        listed.map((entry) => entry.key),
        Object.keys(values).sort(),
      );
      assert.deepEqual(Object.fromEntries(listed.map((entry) => [entry.key, entry.value])), values);
      assert.deepEqual(await settings.get('imaging.checksums'), {
        key: 'imaging.checksums',
        value: ['md5', 'sha256'],
        updatedAt: '2026-01-15T10:00:00.000Z',
        updatedBy: 'user_admin',
      });
      assert.equal(await settings.get('imaging.unknown'), null);
    });
  });

  it('overwrites a value with a new time and author, leaving the others alone', async () => {
    await withDatabase(async (database) => {
      const clock = manualClock();
      const settings = createSettingsRepository(database, { now: clock.now });
      await settings.set({ 'imaging.read_attempts': 5, 'imaging.verify': true }, 'user_a');
      clock.advance(60_000);
      await settings.set({ 'imaging.read_attempts': 2 });

      assert.deepEqual(await settings.get('imaging.read_attempts'), {
        key: 'imaging.read_attempts',
        value: 2,
        updatedAt: '2026-01-15T10:01:00.000Z',
        updatedBy: null,
      });
      assert.deepEqual(await settings.get('imaging.verify'), {
        key: 'imaging.verify',
        value: true,
        updatedAt: '2026-01-15T10:00:00.000Z',
        updatedBy: 'user_a',
      });
    });
  });

  it('deletes overrides and says how many existed', async () => {
    await withDatabase(async (database) => {
      const settings = createSettingsRepository(database);
      await settings.set({ a: 1, b: 2, c: 3 });
      assert.equal(await settings.delete(['a', 'c', 'missing']), 2);
      assert.equal(await settings.delete([]), 0);
      assert.deepEqual(
        (await settings.list()).map((entry) => entry.key),
        ['b'],
      );
    });
  });
});
