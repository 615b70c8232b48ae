import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { DeviceView } from '../../src/system/devices.js';
import { driveState } from '../../src/web/drive-state.js';

const IDLE_WITH_DISC: DeviceView = {
  path: '/dev/sr0',
  vendor: 'ACME',
  model: 'DVD-RW',
  status: 'idle',
  has_media: true,
  media_type: 'dvd',
  media_size_bytes: 4_700_000_000,
  id: 'sr0',
  kind: 'optical',
  description: 'ACME DVD-RW',
  media_kind: 'data',
  label: 'HOLIDAY',
  ejectable: true,
  media_error: null,
  media_error_code: null,
  backing_file: null,
  node: null,
  media_state: 'probed',
  media_checked_at: '2026-12-04T21:00:00.000Z',
  job_id: null,
};
const NOT_WAITING = { job: false, notice: false };

describe('the dashboard’s drive states', () => {
  it('names each state of the specification’s device status', () => {
    assert.equal(driveState(IDLE_WITH_DISC, null, NOT_WAITING), 'disc');
    assert.equal(driveState({ ...IDLE_WITH_DISC, status: 'busy', media_state: 'job', job_id: 'job_1' }, null, NOT_WAITING), 'imaging');
    assert.equal(driveState(IDLE_WITH_DISC, null, { job: true, notice: false }), 'waiting');
    assert.equal(driveState(IDLE_WITH_DISC, null, { job: false, notice: true }), 'waiting');
    assert.equal(driveState({ ...IDLE_WITH_DISC, media_kind: 'blank' }, 'The disc is blank.', NOT_WAITING), 'unimageable');
    assert.equal(driveState({ ...IDLE_WITH_DISC, media_state: 'not_responding' }, 'The drive does not answer.', NOT_WAITING), 'unimageable');
    assert.equal(driveState({ ...IDLE_WITH_DISC, media_error: 'medium error' }, 'medium error', NOT_WAITING), 'unimageable');
    const empty = { ...IDLE_WITH_DISC, has_media: false, media_kind: null, media_type: null, media_size_bytes: null, label: null };
    assert.equal(driveState(empty, 'No disc.', NOT_WAITING), 'empty');
    assert.equal(driveState({ ...empty, media_state: 'probing' }, 'Checking.', NOT_WAITING), 'checking');
    // An older answer that refused the disc is not trusted while the drive is checked again.
    assert.equal(driveState({ ...IDLE_WITH_DISC, media_kind: 'blank', media_state: 'probing' }, 'Checking.', NOT_WAITING), 'checking');
  });

  it('puts reading before waiting and a dead drive before a waiting job', () => {
    const busy = { ...IDLE_WITH_DISC, status: 'busy' as const, media_state: 'job' as const, job_id: 'job_1' };
    assert.equal(driveState(busy, null, { job: true, notice: true }), 'imaging');
    assert.equal(driveState({ ...IDLE_WITH_DISC, media_state: 'not_responding' }, 'x', { job: true, notice: false }), 'unimageable');
  });
});
