import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadConfig } from '../../src/config/load.js';
import { createJobRepository } from '../../src/db/job-repository.js';
import { DRIVE_IO_SLOTS, type DriveService, createDriveService } from '../../src/drives/service.js';
import { type DriveStates, createDriveStates } from '../../src/drives/state.js';
import { UnavailableError } from '../../src/errors.js';
import { createDeviceStatusService } from '../../src/system/devices.js';
import { withDatabase } from '../db/support.js';
import { type FaultFs, mountFaultFs } from '../tools/faultfs.js';
import { type MadeIso, makeIso } from '../tools/iso.js';

/**
 * Drives that stop answering, made with faultfs's hang switch: every read of the FUSE file is held
 * until the test lifts the hang. faultfs serves with direct I/O, so every read a probe makes
 * reaches it and its read counter is exact. A read held in the kernel occupies one of libuv's four
 * threadpool threads; the proof that held reads do not pile up is that this process can still
 * read an ordinary file afterwards (with the threadpool used up, that read would never return and
 * the test would end in its timeout).
 */
/** Long enough for a healthy probe on a loaded test machine; the hung ones wait it out a few times. */
const TIMEOUT_MS = 2000;
const HUNG_TEST_TIMEOUT_MS = 60_000;

let work: string;
let iso: MadeIso;
let ordinaryFile: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'drives-hanging-'));
  iso = await makeIso({ dir: work, label: 'HUNG_DISC', dataMiB: 1 });
  ordinaryFile = join(work, 'ordinary.txt');
  await writeFile(ordinaryFile, 'still served');
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

function serviceFor(files: string[]): DriveService {
  const config = loadConfig({ dataDir: join(work, 'data'), env: {} });
  return createDriveService({
    config: { ...config, drives: { ...config.drives, demo: 'off', scan_optical: false, extra: files } },
    udev: async () => null,
    probeTimeoutMs: TIMEOUT_MS,
  });
}

async function mountDrives(count: number): Promise<FaultFs[]> {
  return Promise.all(Array.from({ length: count }, () => mountFaultFs({ backingFile: iso.path })));
}

/** Lifts every hang, waits until each drive answers a probe again (so nothing holds the mounts), unmounts. */
async function recover(service: DriveService, ids: string[], faults: FaultFs[]): Promise<void> {
  for (const fault of faults) await fault.setHang(false);
  try {
    for (const id of ids) assert.equal((await service.probe(id)).volumeLabel, 'HUNG_DISC');
  } finally {
    for (const fault of faults) await fault.unmount();
  }
}

/** Polls until `check` holds; the bound only ends a broken run, it is no speed requirement. */
async function until(check: () => boolean): Promise<void> {
  for (let attempt = 0; attempt < 1000; attempt += 1) {
    if (check()) return;
    await sleep(20);
  }
  throw new Error('gave up waiting');
}

const noAnswer = (code: string) => (error: unknown) => error instanceof UnavailableError && error.code === code;

describe('probes of drives that do not answer', () => {
  test('time out; callers at the same time and after share the one probe in flight', { timeout: HUNG_TEST_TIMEOUT_MS }, async () => {
    const [fault] = (await mountDrives(1)) as [FaultFs];
    const service = serviceFor([fault.file]);
    const [drive] = await service.list();
    assert.ok(drive);
    try {
      await fault.setHang(true);
      const together = await Promise.allSettled(Array.from({ length: 8 }, () => service.probe(drive.id)));
      for (const outcome of together) {
        assert.equal(outcome.status, 'rejected');
        assert.ok(noAnswer('drive_not_responding')(outcome.reason), String(outcome.reason));
        assert.match(String(outcome.reason), new RegExp(`${drive.id} did not answer within 2 s`));
      }
      for (let attempt = 0; attempt < 2; attempt += 1) await assert.rejects(service.probe(drive.id), noAnswer('drive_not_responding'));
      assert.equal(await readFile(ordinaryFile, 'utf8'), 'still served', 'ten callers, one read held: the threadpool still serves files');
      assert.equal((await fault.stats()).heldReads, 1);
    } finally {
      await recover(service, [drive.id], [fault]);
    }
  });

  test(`hold at most ${DRIVE_IO_SLOTS} threads however many drives hang; the others wait, and say why`, { timeout: HUNG_TEST_TIMEOUT_MS }, async () => {
    const faults = await mountDrives(4);
    const service = serviceFor(faults.map((fault) => fault.file));
    const ids = (await service.list()).map((drive) => drive.id);
    assert.equal(ids.length, 4);
    try {
      for (const fault of faults) await fault.setHang(true);
      const outcomes = await Promise.allSettled(ids.map((id) => service.probe(id)));
      const codes = outcomes.map((outcome) =>
        outcome.status === 'rejected' && outcome.reason instanceof UnavailableError ? outcome.reason.code : outcome.status,
      );
      assert.deepEqual([...codes].sort(), ['drive_not_responding', 'drive_not_responding', 'probe_backlog', 'probe_backlog']);
      const waited = outcomes.find((outcome) => outcome.status === 'rejected' && noAnswer('probe_backlog')(outcome.reason));
      assert.match(String(waited?.status === 'rejected' ? waited.reason : ''), /drives that do not answer \(.+, .+\) hold every probe/);
      assert.equal(await readFile(ordinaryFile, 'utf8'), 'still served', 'four drives hang, the threadpool still serves files');
      const held = await Promise.all(faults.map(async (fault) => (await fault.stats()).heldReads));
      assert.equal(
        held.reduce((sum, count) => sum + count, 0),
        DRIVE_IO_SLOTS,
        'only the probes holding a slot reached their drive',
      );
    } finally {
      await recover(service, ids, faults);
    }
  });
});

describe('the drive-state refresher', () => {
  let fault: FaultFs;
  let service: DriveService;
  let states: DriveStates;
  let driveId: string;
  let busy: Set<string>;
  /** The refresher's calls of DriveService.probe. */
  let probeCalls = 0;

  before(async () => {
    [fault] = (await mountDrives(1)) as [FaultFs];
    service = serviceFor([fault.file]);
    const [drive] = await service.list();
    assert.ok(drive);
    driveId = drive.id;
    busy = new Set([driveId]);
    const counted = {
      list: () => service.list(),
      probe: (id: string) => {
        probeCalls += 1;
        return service.probe(id);
      },
      pending: (id: string) => service.pending(id),
    };
    states = createDriveStates({ drives: counted, busyDeviceIds: async () => busy, roundMs: 20 });
  });

  after(async () => {
    await states.stop();
    await recover(service, [driveId], [fault]);
  });

  test('never reads a drive a job reads from, and reads it once it is idle', { timeout: HUNG_TEST_TIMEOUT_MS }, async () => {
    await states.start();
    for (let round = 0; round < 5; round += 1) await states.nextRound();
    assert.equal(probeCalls, 0, 'five rounds, no probe of the busy drive');
    assert.equal((await fault.stats()).reads, 0);
    assert.deepEqual(
      states.list().map((drive) => drive.id),
      [driveId],
    );
    assert.equal(states.media(driveId).state, 'probing');
    assert.equal(states.media(driveId).media, null);

    busy = new Set();
    await states.nextRound();
    assert.ok((await fault.stats()).reads > 0);
    const known = states.media(driveId);
    assert.equal(known.state, 'probed');
    assert.equal(known.media?.volumeLabel, 'HUNG_DISC');
    assert.ok(known.checkedAt !== null && Date.parse(known.checkedAt) > 0);
  });

  test('shows a drive that stops answering as not responding, starts no second probe, and takes the answer when it comes', {
    timeout: HUNG_TEST_TIMEOUT_MS,
  }, async () => {
    await fault.setHang(true);
    states.refresh(driveId);
    await states.nextRound();
    const callsBefore = probeCalls;
    for (let round = 0; round < 10; round += 1) {
      const known = states.media(driveId);
      assert.equal(known.state, 'not_responding');
      assert.equal(known.error?.code, 'drive_not_responding');
      assert.equal(known.media?.volumeLabel, 'HUNG_DISC', 'the last answer stays for context');
      await states.nextRound();
    }
    assert.equal(probeCalls, callsBefore, 'no round starts another probe while one waits for its answer');
    assert.equal(await readFile(ordinaryFile, 'utf8'), 'still served', 'ten rounds over a hung drive, one read held');
    assert.equal((await fault.stats()).heldReads, 1);

    await fault.setHang(false);
    await until(() => states.media(driveId).state === 'probed');
    assert.equal(states.media(driveId).media?.volumeLabel, 'HUNG_DISC');
  });
});

describe('what job creation learns about a disc', () => {
  test('an older answer that would refuse the disc is not trusted; a fresh one is', async () => {
    const blank = join(work, 'blank.img');
    await writeFile(blank, '');
    await truncate(blank, 4 * 1024 * 1024);
    const service = serviceFor([blank]);
    const [drive] = await service.list();
    assert.ok(drive);
    await withDatabase(async (database) => {
      const jobs = createJobRepository(database);
      const knownMedia = async (freshMs: number) => {
        const states = createDriveStates({ drives: service, busyDeviceIds: async () => new Set(), freshMs });
        await states.start();
        try {
          return await createDeviceStatusService({ drives: service, states, jobs }).knownMedia(drive.id);
        } finally {
          await states.stop();
        }
      };
      assert.equal((await knownMedia(60_000)).kind, 'blank', 'fresh: the job service refuses the blank disc itself');
      await assert.rejects(knownMedia(0), noAnswer('media_probing'), 'an answer of any age counts as older with freshMs 0');
    });
  });
});
