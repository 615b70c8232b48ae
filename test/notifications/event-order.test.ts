import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { createNotificationRepository } from '../../src/db/notification-repository.js';
import { createEventBus } from '../../src/events/bus.js';
import type { DiscEventBus } from '../../src/jobs/automation.js';
import type { JobEvents } from '../../src/jobs/events.js';
import { silentLogger } from '../../src/log.js';
import { createNotificationService } from '../../src/notifications/service.js';
import { withDatabase } from '../db/support.js';

describe('domain events raised one after another by the buses', () => {
  it('are recorded, told to followers and queued for sending in the order they were raised', async () => {
    await withDatabase(async (database, dir) => {
      const failed = (error: unknown) => assert.fail(String(error));
      const discEvents: DiscEventBus = createEventBus(failed);
      const notifications = createNotificationService({
        config: loadConfig({ env: { DISK2ISO_DATA_DIR: dir } }),
        repository: createNotificationRepository(database),
        events: createEventBus<JobEvents>(failed),
        discEvents,
        log: silentLogger(),
        // Nothing is sent during the test: the outbox is only read afterwards, in the order it would send.
        timing: { pollMs: 3_600_000, concurrency: 0 },
      });
      const followed: string[] = [];
      notifications.follow((event) => followed.push(String(event.payload.drive_id)));
      await notifications.createEndpoint({ name: 'order', url: 'http://127.0.0.1:9/', events: ['drive.vanished'], enabled: true });
      notifications.start();
      const raised: string[] = [];
      // A drive watch telling of a burst of drives in one pass, as several drives at start do.
      for (let index = 0; index < 30; index += 1) {
        const driveId = `loop${index}`;
        raised.push(driveId);
        discEvents.emit('drive.vanished', { driveId });
      }
      await notifications.stop();

      const recorded = (await notifications.listEvents({ types: ['drive.vanished'] })).reverse();
      assert.deepEqual(
        recorded.map((event) => event.payload.drive_id),
        raised,
      );
      assert.deepEqual(followed, raised);
      const times = recorded.map((event) => event.at);
      assert.deepEqual(times, [...times].sort(), 'no event recorded later carries an earlier time');
      const due = await createNotificationRepository(database).claimDue(new Date(Date.now() + 60_000), 100, 60_000, []);
      assert.deepEqual(
        due.map((item) => item.event.id),
        recorded.map((event) => event.id),
        'the outbox sends them in that order',
      );
    });
  });
});
