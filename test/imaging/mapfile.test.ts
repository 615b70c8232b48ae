import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeFileAtomic } from '../../src/imaging/atomic-file.js';
import { type MapBlock, type RescueMap, createRescueMap, formatMapfile, parseMapfile, rescueMapFromBlocks } from '../../src/imaging/mapfile.js';
import { requireTool, run } from '../tools/exec.js';

const SECTOR = 2048;
const header = { creator: 'disk2iso test', startedAt: new Date(2026, 0, 2, 3, 4, 5), now: new Date(2026, 0, 2, 3, 4, 6) };

let workdir: string;
before(async () => {
  workdir = await mkdtemp(join(tmpdir(), 'disk2iso-mapfile-'));
});
after(async () => {
  await rm(workdir, { recursive: true, force: true });
});

function compact(map: RescueMap): string[] {
  return map.blocks().map((block) => `${block.pos}+${block.size}${block.status}`);
}

/** Blocks are sorted, contiguous from 0 to size, and no two neighbours share a status. */
function assertWellFormed(map: RescueMap): void {
  let end = 0;
  let previous: MapBlock | undefined;
  for (const block of map.blocks()) {
    assert.equal(block.pos, end, 'contiguous');
    assert.ok(block.size > 0, 'no empty block');
    assert.notEqual(block.status, previous?.status, 'merged');
    end += block.size;
    previous = block;
  }
  assert.equal(end, map.size);
}

test('a new map is one non-tried block', () => {
  const map = createRescueMap(10 * SECTOR);
  assert.deepEqual(compact(map), ['0+20480?']);
  assert.equal(map.sums()['?'], 10 * SECTOR);
  assert.equal(map.statusAt(0), '?');
  assert.equal(map.statusAt(10 * SECTOR - 1), '?');
  assert.throws(() => map.statusAt(10 * SECTOR), RangeError);
});

test('set splits a block and merges equal neighbours again', () => {
  const map = createRescueMap(100);
  map.set(10, 20, '+');
  assert.deepEqual(compact(map), ['0+10?', '10+20+', '30+70?']);
  map.set(30, 10, '+');
  assert.deepEqual(compact(map), ['0+10?', '10+30+', '40+60?']);
  map.set(0, 10, '+');
  assert.deepEqual(compact(map), ['0+40+', '40+60?']);
  map.set(50, 5, '-');
  map.set(60, 5, '-');
  assert.deepEqual(compact(map), ['0+40+', '40+10?', '50+5-', '55+5?', '60+5-', '65+35?']);
  // One call spanning several blocks replaces them all and merges with both sides.
  map.set(45, 30, '+');
  assert.deepEqual(compact(map), ['0+40+', '40+5?', '45+30+', '75+25?']);
  map.set(40, 5, '+');
  map.set(75, 25, '+');
  assert.deepEqual(compact(map), ['0+100+']);
  assertWellFormed(map);
});

test('set keeps per-status sums and area counts exact', () => {
  const map = createRescueMap(1000);
  map.set(100, 100, '*');
  map.set(150, 10, '-');
  map.set(300, 100, '/');
  map.set(0, 100, '+');
  map.set(990, 10, '-');
  assert.deepEqual(map.sums(), { '?': 1000 - 100 - 90 - 10 - 100 - 10, '*': 90, '-': 20, '/': 100, '+': 100 });
  assert.equal(map.areaCount('*'), 2);
  assert.equal(map.areaCount('-'), 2);
  assert.equal(map.areaCount('?'), 2);
  assertWellFormed(map);
});

test('a long random sequence of sets matches a per-byte model', () => {
  const size = 4000;
  const model: string[] = new Array<string>(size).fill('?');
  const map = createRescueMap(size);
  const statuses = ['?', '*', '/', '-', '+'] as const;
  const bytes = randomBytes(3000 * 5);
  for (let step = 0; step < 3000; step++) {
    const pos = bytes.readUInt16LE(step * 5) % size;
    const length = Math.min(size - pos, 1 + (bytes.readUInt16LE(step * 5 + 2) % 300));
    const status = statuses[(bytes[step * 5 + 4] ?? 0) % statuses.length] ?? '?';
    map.set(pos, length, status);
    model.fill(status, pos, pos + length);
  }
  assertWellFormed(map);
  for (const block of map.blocks()) {
    for (let pos = block.pos; pos < block.pos + block.size; pos++) assert.equal(model[pos], block.status, `byte ${pos}`);
  }
  for (const status of statuses) assert.equal(map.sums()[status], model.filter((value) => value === status).length);
});

test('findForward and findBackward clip to the search position', () => {
  const map = createRescueMap(100);
  map.set(10, 10, '*');
  map.set(50, 20, '*');
  assert.deepEqual(map.findForward('*', 0), { pos: 10, size: 10, status: '*' });
  assert.deepEqual(map.findForward('*', 15), { pos: 15, size: 5, status: '*' });
  assert.deepEqual(map.findForward('*', 20), { pos: 50, size: 20, status: '*' });
  assert.equal(map.findForward('*', 70), undefined);
  assert.equal(map.findForward('-', 0), undefined);
  assert.deepEqual(map.findBackward('*', 100), { pos: 50, size: 20, status: '*' });
  assert.deepEqual(map.findBackward('*', 60), { pos: 50, size: 10, status: '*' });
  assert.deepEqual(map.findBackward('*', 50), { pos: 10, size: 10, status: '*' });
  assert.equal(map.findBackward('*', 10), undefined);
  assert.deepEqual(map.findBackward('?', 100), { pos: 70, size: 30, status: '?' });
});

test('formatMapfile writes the GNU ddrescue layout and parseMapfile reads it back', () => {
  const map = createRescueMap(0x20000);
  map.set(0, 0x8000, '+');
  map.set(0x8000, 0x800, '-');
  map.set(0x8800, 0x1000, '/');
  map.set(0x9800, 0x2000, '*');
  const text = formatMapfile(map, { currentPos: 0x9800, currentStatus: '*', currentPass: 1 }, header);
  const lines = text.split('\n');
  assert.equal(lines[0], '# Mapfile. Created by disk2iso test');
  assert.equal(lines[1], '# Start time:   2026-01-02 03:04:05');
  assert.ok(lines.includes('# current_pos  current_status  current_pass'));
  assert.ok(lines.includes('0x00009800     *               1'));
  assert.ok(lines.includes('#      pos        size  status'));
  assert.ok(lines.includes('0x00000000  0x00008000  +'));
  assert.ok(lines.includes('0x00008000  0x00000800  -'));
  assert.ok(lines.includes('0x0000B800  0x00014800  ?'));
  assert.ok(text.endsWith('?\n'));

  const parsed = parseMapfile(text);
  assert.deepEqual(parsed.state, { currentPos: 0x9800, currentStatus: '*', currentPass: 1 });
  assert.deepEqual(parsed.map.blocks(), map.blocks());
  assert.equal(parsed.map.size, 0x20000);
});

test('parseMapfile accepts the old two-column status line, decimal and octal numbers, and fills gaps', () => {
  const parsed = parseMapfile('# old ddrescue\n   4096   -\n0 4096 +\n010000 0x1000 -\n16384 100 +\n');
  assert.deepEqual(parsed.state, { currentPos: 4096, currentStatus: '-', currentPass: 1 });
  assert.deepEqual(compact(parsed.map), ['0+4096+', '4096+4096-', '8192+8192?', '16384+100+']);
});

test('parseMapfile rejects overlaps, bad statuses and garbage', () => {
  assert.throws(() => parseMapfile(''), /no status line/);
  assert.throws(() => parseMapfile('0 X 1\n'), /current_status/);
  assert.throws(() => parseMapfile('0 ? 1\n0 100 +\n50 100 -\n'), /overlaps/);
  assert.throws(() => parseMapfile('0 ? 1\n0 100 x\n'), /pos size status/);
  assert.throws(() => parseMapfile('0 ? 1\n0 zz +\n'), /invalid size/);
  assert.throws(() => parseMapfile('0 ? 1\n0 0x100 + extra\n'), /pos size status/);
  assert.throws(() => rescueMapFromBlocks([{ pos: 10, size: 5, status: '+' }]), /contiguous/);
});

test('writeFileAtomic leaves no temporary file and gives mode 0644', async () => {
  const path = join(workdir, 'atomic.map');
  await writeFileAtomic(path, 'first\n');
  await writeFileAtomic(path, 'second\n');
  assert.equal(await readFile(path, 'utf8'), 'second\n');
  assert.equal((await stat(path)).mode & 0o777, 0o644);
  await assert.rejects(stat(`${path}.tmp`), { code: 'ENOENT' });
});

test('ddrescuelog reads our map: status summary and the bad blocks', async () => {
  const ddrescuelog = await requireTool('ddrescuelog', 'gddrescue');
  const map = createRescueMap(100 * SECTOR);
  map.set(0, 40 * SECTOR, '+');
  map.set(10 * SECTOR, SECTOR, '-');
  map.set(20 * SECTOR, 3 * SECTOR, '-');
  map.set(40 * SECTOR, 5 * SECTOR, '*');
  map.set(45 * SECTOR, 5 * SECTOR, '/');
  map.set(99 * SECTOR, SECTOR, '-');
  const path = join(workdir, 'ours.map');
  await writeFileAtomic(path, formatMapfile(map, { currentPos: 45 * SECTOR, currentStatus: '/', currentPass: 1 }, header));

  const status = await run(ddrescuelog, ['-t', path]);
  assert.match(status.stdout, /current status: scraping/);
  assert.match(status.stdout, /bad-sector:\s+10240 B,\s+in\s+3 area\(s\)/);
  assert.match(status.stdout, /non-trimmed:\s+10240 B,\s+in\s+1 area\(s\)/);
  assert.match(status.stdout, /non-scraped:\s+10240 B,\s+in\s+1 area\(s\)/);
  assert.match(status.stdout, /rescued:\s+73728 B,\s+in\s+3 area\(s\)/);

  const bad = await run(ddrescuelog, ['--list-blocks=-', '-b', String(SECTOR), path]);
  assert.deepEqual(bad.stdout.trim().split('\n').map(Number), [10, 20, 21, 22, 99]);
});

test('parseMapfile reads maps written by GNU ddrescue itself', async () => {
  const ddrescue = await requireTool('ddrescue', 'gddrescue');
  const input = join(workdir, 'input.bin');
  await writeFile(input, randomBytes(300_000));

  const full = join(workdir, 'full.map');
  await run(ddrescue, ['-q', '-b', '2048', input, join(workdir, 'full.out'), full]);
  const fullParsed = parseMapfile(await readFile(full, 'utf8'));
  assert.equal(fullParsed.state.currentStatus, '+');
  assert.deepEqual(compact(fullParsed.map), ['0+300000+']);

  // Only part of the input: the map has non-tried areas on both sides of an unaligned finished one.
  const partial = join(workdir, 'partial.map');
  await run(ddrescue, ['-q', '-b', '2048', '-i', '4096', '-s', '100000', input, join(workdir, 'partial.out'), partial]);
  const partialParsed = parseMapfile(await readFile(partial, 'utf8'));
  assert.deepEqual(compact(partialParsed.map), ['0+4096?', '4096+100000+', '104096+195904?']);
  assert.equal(partialParsed.map.size, 300_000);
});
