/**
 * The rescue map: which bytes of the source are finished, which still need work and which are bad.
 * Kept in memory as sorted, merged, non-overlapping blocks covering [0, size), and persisted in the
 * GNU ddrescue mapfile format so `ddrescuelog` can read it and `ddrescue` can continue from it.
 */

/** Block statuses, as GNU ddrescue names them. */
export type BlockStatus =
  /** non-tried */
  | '?'
  /** non-trimmed: a copy-pass read failed somewhere in it */
  | '*'
  /** non-scraped: the middle of a failed area after trimming */
  | '/'
  /** bad sector */
  | '-'
  /** finished */
  | '+';

const BLOCK_STATUSES: readonly BlockStatus[] = ['?', '*', '/', '-', '+'];

/**
 * What the rescue was doing when the map was written: `?` copying, `*` trimming, `/` scraping,
 * `-` retrying, `+` finished. GNU ddrescue also writes `F` (filling) and `G` (generating).
 */
export type CurrentStatus = BlockStatus | 'F' | 'G';

const CURRENT_STATUSES: readonly string[] = ['?', '*', '/', '-', '+', 'F', 'G'];

export interface MapBlock {
  pos: number;
  size: number;
  status: BlockStatus;
}

/** The mapfile's status line. */
export interface RescueState {
  currentPos: number;
  currentStatus: CurrentStatus;
  currentPass: number;
}

export interface RescueMap {
  /** End of the last block: the size of the rescue domain in bytes. */
  readonly size: number;
  /** The blocks in order. The returned array is a snapshot; changing it changes nothing. */
  blocks(): MapBlock[];
  statusAt(pos: number): BlockStatus;
  /** Gives [pos, pos + size) the status, splitting and merging blocks as needed. */
  set(pos: number, size: number, status: BlockStatus): void;
  /** The first area of `status` that ends after `from`, clipped to start no earlier than `from`. */
  findForward(status: BlockStatus, from: number): MapBlock | undefined;
  /** The last area of `status` that starts before `before`, clipped to end no later than `before`. */
  findBackward(status: BlockStatus, before: number): MapBlock | undefined;
  /** Bytes per status. */
  sums(): Record<BlockStatus, number>;
  /** Number of blocks with this status (each is a maximal run, as blocks are merged). */
  areaCount(status: BlockStatus): number;
}

function emptySums(): Record<BlockStatus, number> {
  return { '?': 0, '*': 0, '/': 0, '-': 0, '+': 0 };
}

function checkRange(pos: number, size: number, limit: number): void {
  if (!Number.isSafeInteger(pos) || !Number.isSafeInteger(size) || pos < 0 || size < 0 || pos + size > limit) {
    throw new RangeError(`range [${pos}, ${pos + size}) is outside the rescue domain [0, ${limit})`);
  }
}

/** A map over [0, size) in one status (default non-tried). */
export function createRescueMap(size: number, status: BlockStatus = '?'): RescueMap {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid rescue domain size ${size}`);
  return rescueMapFromBlocks(size === 0 ? [] : [{ pos: 0, size, status }]);
}

/**
 * A map from contiguous blocks starting at 0 (what a parsed mapfile gives). Adjacent blocks of the
 * same status are merged; empty blocks are dropped.
 */
export function rescueMapFromBlocks(input: readonly MapBlock[]): RescueMap {
  const blocks: MapBlock[] = [];
  const sums = emptySums();
  let end = 0;
  for (const block of input) {
    if (block.pos !== end) throw new RangeError(`blocks are not contiguous at ${end}`);
    checkRange(block.pos, block.size, Number.MAX_SAFE_INTEGER);
    end += block.size;
    if (block.size === 0) continue;
    const last = blocks[blocks.length - 1];
    if (last !== undefined && last.status === block.status) last.size += block.size;
    else blocks.push({ ...block });
    sums[block.status] += block.size;
  }
  const size = end;

  /** Index of the block containing pos (pos < size). */
  function indexAt(pos: number): number {
    let low = 0;
    let high = blocks.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if ((blocks[middle] as MapBlock).pos <= pos) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  function blockAt(index: number): MapBlock {
    const block = blocks[index];
    if (block === undefined) throw new RangeError(`no block ${index}`);
    return block;
  }

  return {
    size,
    blocks: () => blocks.map((block) => ({ ...block })),
    statusAt(pos) {
      checkRange(pos, 1, size);
      return blockAt(indexAt(pos)).status;
    },
    set(pos, length, status) {
      checkRange(pos, length, size);
      if (length === 0) return;
      const end = pos + length;
      const first = indexAt(pos);
      const last = indexAt(end - 1);
      const firstBlock = blockAt(first);
      const lastBlock = blockAt(last);
      const replacement: MapBlock[] = [];
      if (firstBlock.pos < pos) replacement.push({ pos: firstBlock.pos, size: pos - firstBlock.pos, status: firstBlock.status });
      replacement.push({ pos, size: length, status });
      const lastEnd = lastBlock.pos + lastBlock.size;
      if (lastEnd > end) replacement.push({ pos: end, size: lastEnd - end, status: lastBlock.status });
      for (let index = first; index <= last; index++) {
        const removed = blockAt(index);
        sums[removed.status] -= removed.size;
      }
      for (const added of replacement) sums[added.status] += added.size;

      // Widen the replaced range by one neighbour on each side so equal statuses merge.
      let from = first;
      let to = last;
      const before = blocks[first - 1];
      if (before !== undefined && before.status === replacement[0]?.status) {
        replacement.unshift(before);
        from -= 1;
      }
      const after = blocks[last + 1];
      if (after !== undefined && after.status === replacement[replacement.length - 1]?.status) {
        replacement.push(after);
        to += 1;
      }
      const merged: MapBlock[] = [];
      for (const block of replacement) {
        const previous = merged[merged.length - 1];
        if (previous !== undefined && previous.status === block.status) previous.size += block.size;
        else merged.push({ ...block });
      }
      blocks.splice(from, to - from + 1, ...merged);
    },
    findForward(status, from) {
      if (from >= size) return undefined;
      for (let index = indexAt(Math.max(0, from)); index < blocks.length; index++) {
        const block = blockAt(index);
        if (block.status !== status) continue;
        const start = Math.max(block.pos, from);
        return { pos: start, size: block.pos + block.size - start, status };
      }
      return undefined;
    },
    findBackward(status, before) {
      if (before <= 0 || size === 0) return undefined;
      for (let index = indexAt(Math.min(before, size) - 1); index >= 0; index--) {
        const block = blockAt(index);
        if (block.status !== status) continue;
        const end = Math.min(block.pos + block.size, before);
        return { pos: block.pos, size: end - block.pos, status };
      }
      return undefined;
    },
    sums: () => ({ ...sums }),
    areaCount: (status) => blocks.reduce((count, block) => count + (block.status === status ? 1 : 0), 0),
  };
}

function hex(value: number): string {
  return `0x${value.toString(16).toUpperCase().padStart(8, '0')}`;
}

/** Human description of the status line, as ddrescue writes it into its comment header. */
function describeState(state: RescueState): string {
  switch (state.currentStatus) {
    case '?':
      return `Copying non-tried blocks... Pass ${state.currentPass}`;
    case '*':
      return 'Trimming non-trimmed blocks...';
    case '/':
      return 'Scraping non-scraped blocks...';
    case '-':
      return `Retrying bad sectors... Retry ${state.currentPass}`;
    case '+':
      return 'Finished';
    default:
      return 'Filling';
  }
}

function localTimestamp(date: Date): string {
  const pad = (value: number): string => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

export interface MapfileHeader {
  /** What wrote the map, for the first comment line. */
  creator: string;
  startedAt: Date;
  now: Date;
}

/** The map in GNU ddrescue mapfile format (as ddrescue 1.27 writes it). */
export function formatMapfile(map: RescueMap, state: RescueState, header: MapfileHeader): string {
  const lines = [
    `# Mapfile. Created by ${header.creator}`,
    `# Start time:   ${localTimestamp(header.startedAt)}`,
    `# Current time: ${localTimestamp(header.now)}`,
    `# ${describeState(state)}`,
    '# current_pos  current_status  current_pass',
    `${hex(state.currentPos)}     ${state.currentStatus}               ${state.currentPass}`,
    '#      pos        size  status',
  ];
  for (const block of map.blocks()) lines.push(`${hex(block.pos)}  ${hex(block.size)}  ${block.status}`);
  return `${lines.join('\n')}\n`;
}

/** A non-negative integer as C's strtoll with base 0 reads it (ddrescue's parser): hex, octal or decimal. */
function parseInteger(text: string, what: string, lineNumber: number): number {
  let value: number;
  if (/^0x[0-9a-f]+$/i.test(text)) value = parseInt(text.slice(2), 16);
  else if (/^0[0-7]*$/.test(text)) value = parseInt(text, 8);
  else if (/^[1-9][0-9]*$/.test(text)) value = parseInt(text, 10);
  else throw new SyntaxError(`mapfile line ${lineNumber}: invalid ${what} '${text}'`);
  if (!Number.isSafeInteger(value)) throw new SyntaxError(`mapfile line ${lineNumber}: ${what} ${text} is too large`);
  return value;
}

function isBlockStatus(value: string): value is BlockStatus {
  return (BLOCK_STATUSES as readonly string[]).includes(value);
}

export interface ParsedMapfile {
  map: RescueMap;
  state: RescueState;
}

/**
 * Parses a mapfile written by disk2iso or by GNU ddrescue (any version since the status line gained
 * its optional pass column). Blocks must be in order and must not overlap; a gap (which ddrescue
 * never writes) is taken as non-tried.
 */
export function parseMapfile(text: string): ParsedMapfile {
  let state: RescueState | undefined;
  const blocks: MapBlock[] = [];
  let end = 0;
  const lines = text.split('\n');
  for (const [index, rawLine] of lines.entries()) {
    const lineNumber = index + 1;
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    if (state === undefined) {
      const [pos, status, pass] = fields;
      if (pos === undefined || status === undefined || !CURRENT_STATUSES.includes(status) || fields.length > 3) {
        throw new SyntaxError(`mapfile line ${lineNumber}: expected 'current_pos current_status [current_pass]', got '${line}'`);
      }
      state = {
        currentPos: parseInteger(pos, 'current_pos', lineNumber),
        currentStatus: status as CurrentStatus,
        currentPass: pass === undefined ? 1 : parseInteger(pass, 'current_pass', lineNumber),
      };
      continue;
    }
    const [pos, size, status] = fields;
    if (pos === undefined || size === undefined || status === undefined || fields.length !== 3 || !isBlockStatus(status)) {
      throw new SyntaxError(`mapfile line ${lineNumber}: expected 'pos size status', got '${line}'`);
    }
    const blockPos = parseInteger(pos, 'pos', lineNumber);
    const blockSize = parseInteger(size, 'size', lineNumber);
    if (blockPos < end) throw new SyntaxError(`mapfile line ${lineNumber}: block at ${pos} overlaps the previous one or is out of order`);
    if (blockPos > end) blocks.push({ pos: end, size: blockPos - end, status: '?' });
    blocks.push({ pos: blockPos, size: blockSize, status });
    end = blockPos + blockSize;
    if (!Number.isSafeInteger(end)) throw new SyntaxError(`mapfile line ${lineNumber}: block end is too large`);
  }
  if (state === undefined) throw new SyntaxError('mapfile has no status line');
  return { map: rescueMapFromBlocks(blocks), state };
}
