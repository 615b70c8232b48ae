import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DriveEvents } from '../../src/drives/events.js';
import type { Drive, MediaInfo } from '../../src/drives/types.js';
import { createDiscWatch } from '../../src/drives/watch.js';
import { createEventBus } from '../../src/events/bus.js';

const drive = (id: string): Drive => ({
  id,
  path: `/srv/${id}.iso`,
  kind: 'file',
  vendor: null,
  model: null,
  revision: null,
  capabilities: [],
  ejectable: false,
  description: id,
});

const disc = (label: string, fileBytes = 4_194_304): MediaInfo => ({
  present: true,
  deviceSizeBytes: fileBytes,
  imageSizeBytes: 4_194_304,
  sizeSource: 'iso9660',
  logicalSectorSize: 2048,
  fileSystems: ['iso9660'],
  volumeLabel: label,
  volumeId: label,
  createdAt: '2024-01-01T00:00:00.000Z',
  kind: 'data',
  mediaType: null,
});

function watching() {
  const events = createEventBus<DriveEvents>((error) => {
    throw error;
  });
  const seen: string[] = [];
  const baselines: Array<DriveEvents['drive.baseline']> = [];
  events.onAny((type, payload) => {
    if (type === 'drive.baseline') baselines.push(payload as DriveEvents['drive.baseline']);
    else seen.push(`${String(type)} ${'label' in payload ? payload.label : 'driveId' in payload ? payload.driveId : payload.drive.id}`);
  });
  const confirmations: string[] = [];
  const watch = createDiscWatch({ events, confirm: (id) => confirmations.push(id) });
  const answer = (id: string, media: MediaInfo) => watch.answered(id, { media, error: null });
  return { events, watch, seen, baselines, confirmations, answer };
}

describe('the disc watch', () => {
  it('tells what each drive of the first listing held at its first answer, and only then', () => {
    const { watch, seen, baselines, answer } = watching();
    watch.listed([drive('one'), drive('two')]);
    answer('one', disc('AT_START'));
    watch.answered('two', { media: { ...disc('X'), present: false }, error: null });
    assert.deepEqual(baselines, [
      { driveId: 'one', holding: 'disc', label: 'AT_START', sizeBytes: 4_194_304 },
      { driveId: 'two', holding: 'empty', label: null, sizeBytes: null },
    ]);
    answer('one', disc('AT_START'));
    assert.equal(baselines.length, 2);
    assert.deepEqual(seen, []);
  });

  it('raises nothing for what is there at start, and a change once two answers agree on it', () => {
    const { watch, seen, confirmations, answer } = watching();
    watch.listed([drive('one')]);
    answer('one', disc('AT_START'));
    assert.deepEqual(seen, []);
    answer('one', disc('NEXT'));
    assert.deepEqual(seen, [], 'one answer is not yet a change');
    assert.deepEqual(confirmations, ['one']);
    answer('one', disc('NEXT'));
    assert.deepEqual(seen, ['disc.removed AT_START', 'disc.inserted NEXT']);
    answer('one', disc('NEXT'));
    assert.equal(seen.length, 2, 'the same disc again is no change');
  });

  it('waits while an image file is still growing, and reports it once it stays the same', () => {
    const { watch, seen, answer } = watching();
    watch.listed([drive('one')]);
    answer('one', { ...disc('X'), present: false });
    for (const bytes of [1_048_576, 2_097_152, 3_145_728]) answer('one', disc('COPYING', bytes));
    assert.deepEqual(seen, []);
    answer('one', disc('COPYING', 3_145_728));
    assert.deepEqual(seen, ['disc.inserted COPYING']);
  });

  it('counts an image file whose content changed under the same descriptors as another disc', () => {
    const { watch, seen, answer } = watching();
    watch.listed([drive('one')]);
    answer('one', { ...disc('SAME'), sourceStamp: '1:10:4194304:1000' });
    answer('one', { ...disc('SAME'), sourceStamp: '1:11:4194304:2000' });
    answer('one', { ...disc('SAME'), sourceStamp: '1:11:4194304:2000' });
    assert.deepEqual(seen, ['disc.removed SAME', 'disc.inserted SAME']);
  });

  it('tells drives that come and go after the first listing, and the first disc of a new drive', () => {
    const { watch, seen, answer } = watching();
    watch.listed([drive('one')]);
    watch.listed([drive('one'), drive('two')]);
    answer('two', disc('IN_NEW'));
    answer('two', disc('IN_NEW'));
    watch.listed([drive('two')]);
    assert.deepEqual(seen, ['drive.appeared two', 'disc.inserted IN_NEW', 'drive.vanished one']);
  });

  it('reports a disc that cannot be imaged or read, with why, and does not call it inserted', () => {
    const { events, watch, seen, answer } = watching();
    const reasons: string[] = [];
    events.on('disc.unimageable', ({ reason }) => reasons.push(reason));
    watch.listed([drive('one')]);
    answer('one', { ...disc('X'), present: false });
    for (let i = 0; i < 2; i += 1) answer('one', { ...disc('AUDIO'), kind: 'audio', fileSystems: [] });
    for (let i = 0; i < 2; i += 1)
      watch.answered('one', { media: null, error: { code: 'media_unreadable', message: 'none of its first sectors could be read' } });
    assert.deepEqual(seen, ['disc.unimageable AUDIO', 'disc.removed AUDIO', 'disc.unimageable null']);
    assert.deepEqual(reasons, ['unsupported_media', 'media_unreadable']);
  });
});
