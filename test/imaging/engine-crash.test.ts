import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { runImaging } from '../../src/imaging/engine.js';
import { sha256File } from '../tools/iso.js';
import { MiB, SECTOR, assertFinishedAreasMatch, imagingOptions, imagingRequest, readMap, useFaultyDisc } from './helpers.js';

const SIZE = 24 * MiB;
/** A slow drive, as in the fault-injection campaign (issue 10, finding 7): 1 MiB/s. */
const RATE_BPS = MiB;
const SAVE_INTERVAL_MS = 1000;
/** The drive has served this much to the run when it is killed: about ten seconds of reading. */
const KILL_AFTER_BYTES = 10 * MiB;
/**
 * The most the saved map may trail what the drive served: a few seconds of reading at its rate.
 * One save interval, the reads in flight and the save itself account for about two; the rest is
 * room for a loaded machine. Expressed in bytes, as the drive cannot serve more than its rate.
 */
const MAX_LOST_BYTES = 4 * RATE_BPS;
/** Not a test assertion: only keeps a child that never gets going from hanging the run. */
const GIVE_UP_MS = 120_000;

const disc = useFaultyDisc('engine-crash', SIZE);

test('kill -9 on a slow drive: the saved map trails what the drive delivered by seconds, every finished area holds the disc', async () => {
  const dir = join(disc.workdir, 'crash');
  await mkdir(dir);
  const outputPath = join(dir, 'crash.iso');
  await disc.faultFs.setRate(RATE_BPS);
  const servedBefore = (await disc.faultFs.stats()).readBytes;
  const script = fileURLToPath(new URL('./fixtures/run-engine.js', import.meta.url));
  const spec = {
    source: { path: disc.loop.path, sizeBytes: SIZE, sectorSize: SECTOR },
    outputPath,
    options: imagingOptions({ mapSaveIntervalMs: SAVE_INTERVAL_MS }),
  };
  const child = spawn(process.execPath, [script, JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'inherit'] });
  const closed = new Promise<NodeJS.Signals | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (_code, signal) => resolve(signal));
  });
  try {
    const givingUp = Date.now() + GIVE_UP_MS;
    while ((await disc.faultFs.stats()).readBytes - servedBefore < KILL_AFTER_BYTES) {
      if (child.exitCode !== null || Date.now() > givingUp) throw new Error('the engine ended or stalled before the drive served enough');
      await sleep(50);
    }
    child.kill('SIGKILL');
    assert.equal(await closed, 'SIGKILL');
  } finally {
    child.kill('SIGKILL');
    await disc.faultFs.setRate(0);
  }
  // Reads in flight at the kill still finish in the kernel, so they are in this count too.
  const served = (await disc.faultFs.stats()).readBytes - servedBefore;

  const map = await readMap(`${outputPath}.map`);
  const saved = map.sums()['+'];
  assert.equal(await assertFinishedAreasMatch(map, `${outputPath}.part`, disc.backing), saved);
  assert.ok(saved > 0 && saved < SIZE, `the map records part of the disc: ${saved} bytes`);
  assert.ok(served - saved <= MAX_LOST_BYTES, `the drive served ${served} bytes, the saved map records ${saved}: ${served - saved} bytes would be read again`);

  const resumed = await runImaging(imagingRequest({ path: disc.loop.path, sizeBytes: SIZE }, outputPath));
  assert.equal(resumed.outcome, 'completed');
  assert.equal(resumed.resumed, true);
  assert.equal(await sha256File(outputPath), disc.sourceSha256);
  assert.ok(resumed.reads.bytes <= SIZE - saved + 2 * SECTOR, `the resumed run read only what the map did not record: ${resumed.reads.bytes} bytes`);
});
