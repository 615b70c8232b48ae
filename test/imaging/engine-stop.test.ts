import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '../../src/errors.js';
import { runImaging } from '../../src/imaging/engine.js';
import type { ImagingProgress } from '../../src/imaging/types.js';
import { mountFaultFs } from '../tools/faultfs.js';
import { sha256File } from '../tools/iso.js';
import { type LoopDevice, attachLoop } from '../tools/loop.js';
import { MiB, assertFinishedAreasMatch, imagingOptions, imagingRequest, readMap, useFaultyDisc } from './helpers.js';

const SIZE = 48 * MiB;
/** Per FUSE read (the loop driver sends about two per MiB): a run of SIZE takes about a second, so it can be stopped half-way. */
const SLOW_DELAY_MS = 10;
/** A run of several seconds, for a progress series long enough to show a trend. */
const VERY_SLOW_DELAY_MS = 45;

const disc = useFaultyDisc('engine-stop', SIZE);

async function outputDir(name: string): Promise<string> {
  const dir = join(disc.workdir, name);
  await mkdir(dir);
  return dir;
}

const source = (): { path: string; sizeBytes: number } => ({ path: disc.loop.path, sizeBytes: SIZE });

test('pause keeps .part and map; running again resumes to a byte-identical image', async () => {
  const dir = await outputDir('pause');
  const outputPath = join(dir, 'paused.iso');
  await disc.faultFs.setDelay(SLOW_DELAY_MS);
  const controller = new AbortController();
  const events: ImagingProgress[] = [];
  const first = await runImaging(
    imagingRequest(source(), outputPath, {
      signal: controller.signal,
      onProgress: (event) => {
        events.push(event);
        if (event.bytesDone >= 8 * MiB) controller.abort('pause');
      },
    }),
  );
  assert.equal(first.outcome, 'paused');
  assert.equal(first.verified, null);
  assert.deepEqual(first.checksums, {});
  assert.deepEqual((await readdir(dir)).sort(), ['paused.iso.map', 'paused.iso.part']);
  const map = await readMap(first.mapPath);
  assert.ok(map.sums()['+'] >= 8 * MiB && map.sums()['?'] > 0, JSON.stringify(map.sums()));
  await assertFinishedAreasMatch(map, first.partPath, disc.backing);
  assert.equal(events.at(-1)?.bytesDone, map.sums()['+'], 'the last progress event reports what the saved map records');

  await disc.faultFs.setDelay(0);
  const second = await runImaging(imagingRequest(source(), outputPath));
  assert.equal(second.outcome, 'completed');
  assert.equal(second.resumed, true);
  assert.equal(await sha256File(outputPath), disc.sourceSha256);
  assert.equal(second.checksums.sha256, disc.sourceSha256);
});

test('cancel removes .part and map, or keeps them when configured; a kept pair resumes', async () => {
  await disc.faultFs.setDelay(SLOW_DELAY_MS);
  const dir = await outputDir('cancel');
  for (const keep of [false, true]) {
    const outputPath = join(dir, `cancel-${keep}.iso`);
    const controller = new AbortController();
    const result = await runImaging(
      imagingRequest(source(), outputPath, {
        options: { keepPartialOnCancel: keep },
        signal: controller.signal,
        onProgress: (event) => {
          if (event.bytesDone >= 4 * MiB) controller.abort('cancel');
        },
      }),
    );
    assert.equal(result.outcome, 'cancelled');
  }
  assert.deepEqual((await readdir(dir)).sort(), ['cancel-true.iso.map', 'cancel-true.iso.part']);
  await disc.faultFs.setDelay(0);
  const resumed = await runImaging(imagingRequest(source(), join(dir, 'cancel-true.iso')));
  assert.equal(resumed.resumed, true);
  assert.equal(await sha256File(join(dir, 'cancel-true.iso')), disc.sourceSha256);
});

interface ChildMessage extends Partial<ImagingProgress> {
  type: 'progress' | 'result' | 'error';
  outcome?: string;
  resumed?: boolean;
  code?: string;
  message?: string;
  checksums?: Record<string, string>;
}

/** Runs the engine in a child process; `onMessage` may return true to SIGKILL it. Resolves with all messages. */
function runChild(outputPath: string, onMessage: (message: ChildMessage) => boolean = () => false): Promise<ChildMessage[]> {
  const script = fileURLToPath(new URL('./fixtures/run-engine.js', import.meta.url));
  const spec = { source: { ...source(), sectorSize: 2048 }, outputPath, options: imagingOptions({ mapSaveIntervalMs: 100 }) };
  const child = spawn(process.execPath, [script, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: ChildMessage[] = [];
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    const message = JSON.parse(line) as ChildMessage;
    messages.push(message);
    if (onMessage(message)) child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', () => resolve(messages));
  });
}

test('kill -9 mid-copy, then run again: resumes from the saved map to a byte-identical image', async () => {
  const dir = await outputDir('kill');
  const outputPath = join(dir, 'killed.iso');
  await disc.faultFs.setDelay(SLOW_DELAY_MS);
  const killedRun = await runChild(outputPath, (message) => message.type === 'progress' && (message.bytesDone ?? 0) >= 12 * MiB);
  assert.ok(!killedRun.some((message) => message.type === 'result' || message.type === 'error'), 'killed before it ended');

  // What the dead process left is consistent: every finished area of the map holds source data.
  const map = await readMap(`${outputPath}.map`);
  assert.ok(map.sums()['+'] > 0 && map.sums()['+'] < SIZE, JSON.stringify(map.sums()));
  await assertFinishedAreasMatch(map, `${outputPath}.part`, disc.backing);

  await disc.faultFs.setDelay(0);
  const resumedRun = await runChild(outputPath);
  const result = resumedRun.find((message) => message.type === 'result');
  assert.ok(result !== undefined, JSON.stringify(resumedRun.filter((message) => message.type === 'error')));
  assert.equal(result.outcome, 'completed');
  assert.equal(result.resumed, true);
  assert.equal(await sha256File(outputPath), disc.sourceSha256);
  assert.equal(result.checksums?.['sha256'], disc.sourceSha256);
});

test('slow drive: rate and ETA stay positive and finite, and the ETA falls as the copy proceeds', async () => {
  const dir = await outputDir('slow');
  await disc.faultFs.setDelay(VERY_SLOW_DELAY_MS);
  const request = imagingRequest(source(), join(dir, 'slow.iso'));
  const result = await runImaging(request);
  await disc.faultFs.setDelay(0);
  assert.equal(result.outcome, 'completed');

  const copying = request.events.filter((event) => event.phase === 'copying' && event.rateBps > 0);
  // How many events arrive depends on the machine's speed; three are the fewest that show a trend.
  assert.ok(copying.length >= 3, `${copying.length} copy events with a rate`);
  for (const event of copying) {
    assert.ok(Number.isFinite(event.rateBps) && event.rateBps > 0);
    assert.ok(event.etaSeconds !== null && Number.isFinite(event.etaSeconds) && event.etaSeconds >= 0);
  }
  const etas = copying.map((event) => event.etaSeconds ?? 0);
  const third = Math.floor(etas.length / 3);
  const average = (values: number[]): number => values.reduce((sum, value) => sum + value, 0) / values.length;
  assert.ok(average(etas.slice(0, third)) > average(etas.slice(-third)), `ETA falls overall: ${etas.map((eta) => eta.toFixed(1)).join(' ')}`);
  const done = copying.map((event) => event.bytesDone);
  assert.deepEqual(
    done,
    [...done].sort((a, b) => a - b),
    'bytes done never go back',
  );
});

test('the drive vanishes mid-run: device_gone, nothing marked bad; on a fresh mount the run resumes byte-identical', async () => {
  const dir = await outputDir('vanish');
  const outputPath = join(dir, 'vanish.iso');
  const dying = await mountFaultFs({ backingFile: disc.backing, delayMs: SLOW_DELAY_MS });
  let dyingLoop: LoopDevice | undefined;
  try {
    dyingLoop = await attachLoop(dying.file, { sectorSize: 2048 });
    let killed: Promise<void> | undefined;
    const request = imagingRequest({ path: dyingLoop.path, sizeBytes: SIZE }, outputPath, {
      onProgress: (event) => {
        if (event.bytesDone >= 8 * MiB) killed ??= dying.kill();
      },
    });
    await assert.rejects(runImaging(request), (error: unknown) => error instanceof UnavailableError && error.code === 'device_gone');
    await killed;

    assert.deepEqual((await readdir(dir)).sort(), ['vanish.iso.map', 'vanish.iso.part']);
    const map = await readMap(`${outputPath}.map`);
    const sums = map.sums();
    assert.equal(sums['-'] + sums['*'] + sums['/'], 0, `nothing marked bad: ${JSON.stringify(sums)}`);
    assert.ok(sums['+'] >= 8 * MiB && sums['?'] > 0);
    await assertFinishedAreasMatch(map, `${outputPath}.part`, disc.backing);
  } finally {
    await dyingLoop?.detach();
    await dying.unmount();
  }

  const fresh = await mountFaultFs({ backingFile: disc.backing });
  try {
    const freshLoop = await attachLoop(fresh.file, { sectorSize: 2048 });
    try {
      const result = await runImaging(imagingRequest({ path: freshLoop.path, sizeBytes: SIZE }, outputPath));
      assert.equal(result.outcome, 'completed');
      assert.equal(result.resumed, true);
      assert.equal(result.badSectors.badBytes, 0);
      assert.equal(await sha256File(outputPath), disc.sourceSha256);
      assert.equal((await stat(`${outputPath}.map`)).isFile(), true);
    } finally {
      await freshLoop.detach();
    }
  } finally {
    await fresh.unmount();
  }
});
