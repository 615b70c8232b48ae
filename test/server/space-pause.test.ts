import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type TestServer, api, startTestServer, waitFor } from '../http/support.js';
import { mountMemoryFs } from '../imaging/helpers.js';
import { testDriveId } from '../support/database.js';
import { requireTool, run } from '../tools/exec.js';
import { type MadeIso, makeIso, sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';

describe('a job waiting for space on the output is paused, not failed, and resume continues it', () => {
  let work: string;
  let iso: MadeIso;
  let loop: LoopDevice;
  let output: { dir: string; unmount: () => Promise<void> };
  let service: TestServer;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-space-'));
    iso = await makeIso({ dir: work, label: 'SPACE_DISC', dataMiB: 24, files: 2, seed: 31 });
    loop = await attachLoop(iso.path, { sectorSize: 2048 });
    // Smaller than the image: the job cannot even start.
    output = await mountMemoryFs('tmpfs', 16);
    service = await startTestServer({ devices: [loop.path], env: { DISK2ISO_OUTPUT_DIR: output.dir } });
  });

  after(async () => {
    try {
      await service?.close();
    } finally {
      await output?.unmount();
      await loop?.detach();
      await rm(work, { recursive: true, force: true });
    }
  });

  const job = async (id: string) => (await api(service.url, 'GET', `/api/v1/jobs/${id}`)).body;

  it('pauses with pause_reason disk_full, completes after resume once there is room, and refuses actions that no longer apply with invalid_state', async () => {
    const created = await api(service.url, 'POST', '/api/v1/jobs', { device: testDriveId(loop.name) });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const id: string = created.body.id;
    await waitFor('the job to stop', async () => !['queued', 'running', 'verifying'].includes((await job(id)).status));

    const waiting = await job(id);
    assert.equal(waiting.status, 'paused', JSON.stringify(waiting));
    assert.equal(waiting.pause_reason, 'disk_full');
    assert.equal(waiting.error.code, 'insufficient_space');
    assert.equal(waiting.finished_at, null, 'a paused job has not finished');

    const retry = await api(service.url, 'PATCH', `/api/v1/jobs/${id}`, { action: 'retry' });
    assert.equal(retry.status, 409);
    assert.equal(retry.body.error.code, 'invalid_state');

    await run(await requireTool('mount', 'mount'), ['-o', 'remount,size=64m', output.dir]);
    const resumed = await api(service.url, 'PATCH', `/api/v1/jobs/${id}`, { action: 'resume' });
    assert.equal(resumed.status, 200, JSON.stringify(resumed.body));
    assert.equal(resumed.body.error, null);
    assert.equal(resumed.body.pause_reason, null);
    await waitFor('the resumed job to complete', async () => (await job(id)).status === 'completed');
    assert.equal(await sha256File((await job(id)).output_file), iso.sha256);

    // Resume and priority are refused by the service's own checks, pause and cancel by the queue's: one code for all.
    for (const body of [{ action: 'resume' }, { action: 'retry' }, { action: 'pause' }, { action: 'cancel' }, { priority: 'high' }]) {
      const refused = await api(service.url, 'PATCH', `/api/v1/jobs/${id}`, body);
      assert.equal(refused.status, 409, JSON.stringify(body));
      assert.equal(refused.body.error.code, 'invalid_state', JSON.stringify({ body, answer: refused.body }));
    }
  });
});
