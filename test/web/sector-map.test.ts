import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseMapfile } from '../../src/imaging/mapfile.js';
import { type CellStatus, type SectorMapView, readSectorMap, sectorMapView } from '../../src/web/sector-map.js';
import { requireTool, run } from '../tools/exec.js';
import { mountFaultFs } from '../tools/faultfs.js';

/** The status of every cell, in reading order, from the runs the page draws. */
function cellStatuses(view: SectorMapView): CellStatus[] {
  const cells: CellStatus[] = [];
  for (const run of view.runs) {
    assert.equal(run.row * view.columns + run.column, cells.length, 'runs are contiguous and in order');
    for (let index = 0; index < run.length; index++) cells.push(run.status);
  }
  return cells;
}

function indexesOf(cells: CellStatus[], status: CellStatus): number[] {
  return cells.flatMap((cell, index) => (cell === status ? [index] : []));
}

describe('sector map', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-sector-map-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('draws the map GNU ddrescue wrote for a disc with a bad area', async () => {
    const ddrescue = await requireTool('ddrescue', 'gddrescue');
    const source = join(work, 'disc.bin');
    const size = 1024 * 1024;
    await writeFile(source, randomBytes(size));
    // 10 KiB unreadable at 200 KiB: with 1 KiB per cell that is cells 200 to 209.
    const faults = await mountFaultFs({ backingFile: source, badRanges: [[200 * 1024, 210 * 1024]] });
    const image = join(work, 'disc.iso');
    try {
      await run(ddrescue, ['-b', '2048', '-r', '1', faults.file, image, `${image}.map`]);
    } finally {
      await faults.unmount();
    }

    const view = await readSectorMap(image);
    assert.ok(view, 'the map was read');
    assert.equal(view.sizeBytes, size);
    assert.equal(view.bytesPerCell, 1024);
    assert.equal(view.columns, 64);
    assert.equal(view.rows, 16);
    assert.equal(view.totals.bad, 10 * 1024);
    assert.equal(view.totals.finished, size - 10 * 1024);
    assert.equal(view.current, null, 'a finished rescue has no current position');
    const cells = cellStatuses(view);
    assert.equal(cells.length, 1024);
    assert.deepEqual(indexesOf(cells, 'bad'), [200, 201, 202, 203, 204, 205, 206, 207, 208, 209]);
    assert.equal(indexesOf(cells, 'finished').length, 1024 - 10);
  });

  it('gives a cell the worst status of its bytes and marks where reading is', () => {
    const mapfile = [
      '# Mapfile. Created by a test',
      '0x00004800     ?               1',
      '#      pos        size  status',
      '0x00000000  0x00000C00  +',
      '0x00000C00  0x00000200  -',
      '0x00000E00  0x00002200  +',
      '0x00003000  0x00000800  *',
      '0x00003800  0x00000800  /',
      '0x00004000  0x0000C000  ?',
    ].join('\n');
    const view = sectorMapView(parseMapfile(mapfile), 8, 4);
    // 64 KiB in 32 cells of 2 KiB.
    assert.equal(view.bytesPerCell, 2048);
    const cells = cellStatuses(view);
    assert.equal(cells.length, 32);
    assert.equal(cells[0], 'finished');
    assert.equal(cells[1], 'bad', '512 bad bytes spoil the whole cell');
    assert.deepEqual(cells.slice(2, 6), ['finished', 'finished', 'finished', 'finished']);
    assert.equal(cells[6], 'nontrimmed');
    assert.equal(cells[7], 'nonscraped');
    assert.deepEqual(
      indexesOf(cells, 'nontried'),
      Array.from({ length: 24 }, (_, index) => index + 8),
    );
    assert.deepEqual(view.current, { row: 1, column: 1 }, 'position 0x4800 is cell 9');
    assert.equal(view.totals.nontried, 0xc000);
  });

  it('is absent while no map exists and when the file is not a map', async () => {
    assert.equal(await readSectorMap(join(work, 'no-such-image.iso')), null);
    const broken = join(work, 'broken.iso');
    await writeFile(`${broken}.map`, 'this is not a mapfile\n');
    assert.equal(await readSectorMap(broken), null);
  });
});
