import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { createNotificationRepository, newNotificationId } from '../../src/db/notification-repository.js';
import { withDatabase } from '../db/support.js';
import { openAgain } from '../support/database.js';

describe('notification deliveries', () => {
  it('are claimed by one dispatcher only, however many claim at once on other connections', async () => {
    await withDatabase(async (database) => {
      const other = await openAgain(database);
      try {
        const recorder = createNotificationRepository(database);
        const at = new Date('2026-01-15T10:00:00.000Z');
        const count = 60;
        for (let index = 0; index < count; index += 1) {
          await recorder.record({ id: newNotificationId('evt'), type: 'job.completed', at: at.toISOString(), payload: { index } }, { email: true });
        }
        const claimedBy = new Map<string, string[]>();
        const dispatch = async (name: string, repository: ReturnType<typeof createNotificationRepository>): Promise<void> => {
          for (;;) {
            const due = await repository.claimDue(new Date(at.getTime() + 1000), 3, 60_000, []);
            if (due.length === 0) return;
            for (const { delivery } of due) claimedBy.set(delivery.id, [...(claimedBy.get(delivery.id) ?? []), name]);
            await yieldToEventLoop();
          }
        };
        const repositories = [createNotificationRepository(database), createNotificationRepository(other)];
        await Promise.all(repositories.flatMap((repository, index) => [dispatch(`conn${index}-a`, repository), dispatch(`conn${index}-b`, repository)]));

        assert.equal(claimedBy.size, count, 'every delivery was claimed');
        const twice = [...claimedBy].filter(([, names]) => names.length > 1);
        assert.deepEqual(twice, [], 'no delivery was claimed twice');
      } finally {
        await other.close();
      }
    });
  });
});
