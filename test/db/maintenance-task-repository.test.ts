import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createArchiveRepository } from '../../src/db/archive-repository.js';
import { createMaintenanceTaskRepository } from '../../src/db/maintenance-task-repository.js';
import { withDatabase } from './support.js';

const SOURCE = { deviceId: null, devicePath: null, discKind: null, volumeLabel: null, volumeId: null, mediaType: null, fileSystems: [] };

describe('maintenance task repository', () => {
  it('gives a node only the tasks of the images on its own disk, and tasks of no image to anyone', async () => {
    await withDatabase(async (database) => {
      const archives = createArchiveRepository(database);
      const tasks = createMaintenanceTaskRepository(database);
      const onNode = async (name: string, nodeId: string | null) =>
        (await archives.create({ filename: `${name}.iso`, path: `/out/${name}.iso`, sizeBytes: 4096, checksums: {}, source: SOURCE, nodeId })).id;
      const ofB = await tasks.enqueue({ kind: 'par2_create', archiveId: await onNode('on-b', 'tower-b'), params: {}, requestedBy: null });
      const ofA = await tasks.enqueue({ kind: 'par2_create', archiveId: await onNode('on-a', 'tower-a'), params: {}, requestedBy: null });
      const adoption = await tasks.enqueue({ kind: 'adopt', archiveId: null, params: {}, requestedBy: null });
      const shared = await tasks.enqueue({ kind: 'par2_create', archiveId: await onNode('shared', null), params: {}, requestedBy: null });

      assert.equal((await tasks.claimNext('tower-a'))?.id, ofA.id, 'tower-a passes over the older task of tower-b');
      assert.equal((await tasks.claimNext('tower-a'))?.id, adoption.id, 'a task of no image is anyone’s');
      assert.equal((await tasks.claimNext('tower-a'))?.id, shared.id, 'so is an image of no node');
      assert.equal(await tasks.claimNext('tower-a'), null, 'tower-b’s image stays with tower-b');
      assert.equal((await tasks.claimNext())?.id, ofB.id, 'without a node, every task is taken');
    });
  });
});
