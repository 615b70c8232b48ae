import { readFile } from 'node:fs/promises';
import { errnoCode } from '../errors.js';
import { type BlockStatus, type ParsedMapfile, parseMapfile } from '../imaging/mapfile.js';

/**
 * A rescue map drawn like ddrescueview: the disc as a grid of cells in reading order, each cell
 * coloured by the worst status of the bytes it covers, so a single bad sector stays visible
 * however large the disc is.
 * @internal exported for its tests
 */
export type CellStatus = 'finished' | 'nontried' | 'nontrimmed' | 'nonscraped' | 'bad';

const STATUS_OF: Record<BlockStatus, CellStatus> = { '+': 'finished', '?': 'nontried', '*': 'nontrimmed', '/': 'nonscraped', '-': 'bad' };
/** Higher wins when a cell covers bytes of several statuses. */
const SEVERITY: Record<CellStatus, number> = { finished: 0, nontried: 1, nontrimmed: 2, nonscraped: 3, bad: 4 };

/** Consecutive cells of one status within a row, drawn as one rectangle. */
interface CellRun {
  row: number;
  column: number;
  length: number;
  status: CellStatus;
}

export interface SectorMapView {
  columns: number;
  rows: number;
  runs: CellRun[];
  bytesPerCell: number;
  sizeBytes: number;
  totals: Record<CellStatus, number>;
  /** The cell being read, or null when the rescue is finished. */
  current: { row: number; column: number } | null;
  currentPos: number;
  /** The pass the engine was in when it last saved the map (a retry's number among the retries). */
  currentPass: number;
}

const MAP_COLUMNS = 64;
const MAP_MAX_ROWS = 16;

/** @internal exported for its tests */
export function sectorMapView(parsed: ParsedMapfile, columns = MAP_COLUMNS, maxRows = MAP_MAX_ROWS): SectorMapView {
  const { map, state } = parsed;
  const size = map.size;
  const cellCount = Math.max(1, Math.min(columns * maxRows, size));
  const bytesPerCell = Math.max(1, Math.ceil(size / cellCount));
  const cells = Math.max(1, Math.ceil(size / bytesPerCell));
  const statuses: CellStatus[] = new Array<CellStatus>(cells).fill('finished');
  const sums = map.sums();
  const totals: Record<CellStatus, number> = { finished: sums['+'], nontried: sums['?'], nontrimmed: sums['*'], nonscraped: sums['/'], bad: sums['-'] };

  for (const block of map.blocks()) {
    const status = STATUS_OF[block.status];
    if (status === 'finished') continue;
    const first = Math.floor(block.pos / bytesPerCell);
    const last = Math.floor((block.pos + block.size - 1) / bytesPerCell);
    for (let cell = first; cell <= last; cell++) {
      if (SEVERITY[status] > SEVERITY[statuses[cell] ?? 'finished']) statuses[cell] = status;
    }
  }
  if (size === 0) statuses[0] = 'nontried';

  const runs: CellRun[] = [];
  for (let cell = 0; cell < cells; cell++) {
    const status = statuses[cell] ?? 'finished';
    const row = Math.floor(cell / columns);
    const column = cell % columns;
    const previous = runs[runs.length - 1];
    if (previous !== undefined && previous.row === row && previous.status === status) previous.length += 1;
    else runs.push({ row, column, length: 1, status });
  }

  const finished = state.currentStatus === '+' || totals.finished === size;
  const currentCell = Math.min(cells - 1, Math.floor(state.currentPos / bytesPerCell));
  return {
    columns: Math.min(columns, cells),
    rows: Math.ceil(cells / columns),
    runs,
    bytesPerCell,
    sizeBytes: size,
    totals,
    current: finished ? null : { row: Math.floor(currentCell / columns), column: currentCell % columns },
    currentPos: state.currentPos,
    currentPass: state.currentPass,
  };
}

/**
 * The map of a job's image: `NAME.iso.map` next to the image (the engine keeps it there while
 * copying and after finishing). Null while no map exists yet or when it cannot be parsed (it is
 * replaced atomically, so that means it was never written or someone else wrote it).
 */
export async function readSectorMap(outputFile: string): Promise<SectorMapView | null> {
  let text: string;
  try {
    text = await readFile(`${outputFile}.map`, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return null;
    throw error;
  }
  try {
    return sectorMapView(parseMapfile(text));
  } catch (error) {
    if (error instanceof SyntaxError || error instanceof RangeError) return null;
    throw error;
  }
}
