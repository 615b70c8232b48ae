import type { BlockReader } from './block-reader.js';
import type { IsoVolumeDescriptor } from './volume-recognition.js';

/** What the probe needs from an ISO 9660 volume (with its Joliet and Rock Ridge extensions). */
export interface Iso9660Volume {
  /** Primary volume identifier, padding trimmed; null when empty. */
  volumeId: string | null;
  /** Volume space size x logical block size; null when the descriptor holds no usable size. */
  volumeBytes: number | null;
  createdAt: string | null;
  /** Present when a supplementary descriptor carries a Joliet escape sequence. */
  joliet: { label: string | null } | null;
  rockRidge: boolean;
  /** Names in the root directory (ISO 9660 and Joliet trees), upper case, without version. */
  rootNames: Set<string>;
}

const ISO_BLOCK_SIZES = new Set([512, 1024, 2048, 4096]);
/** A root directory holding more than this is not one the probe needs to read completely. */
const MAX_DIRECTORY_BYTES = 1024 * 1024;
/** Continuation areas chain; garbage can make them loop. */
const MAX_CONTINUATIONS = 16;
const ROCK_RIDGE_SIGNATURES = new Set(['RR', 'PX', 'PN', 'SL', 'NM', 'CL', 'PL', 'RE', 'TF', 'SF', 'ER']);

interface DirectoryRecord {
  extent: number;
  dataLength: number;
  isDirectory: boolean;
  name: Buffer;
  systemUse: Buffer;
}

export async function readIso9660(reader: BlockReader, descriptors: IsoVolumeDescriptor[]): Promise<Iso9660Volume | null> {
  const primary = descriptors.find((descriptor) => descriptor.type === 1);
  if (!primary) return null;
  const pvd = primary.bytes;

  const blockSize = pvd.readUInt16LE(128);
  const volumeSpace = pvd.readUInt32LE(80);
  const usableBlockSize = ISO_BLOCK_SIZES.has(blockSize) ? blockSize : null;
  const volumeBytes = usableBlockSize !== null && volumeSpace > 0 ? volumeSpace * usableBlockSize : null;
  const directoryBlockSize = usableBlockSize ?? 2048;

  const rootNames = new Set<string>();
  const root = parseDirectoryRecord(pvd.subarray(156, 190));
  let rockRidge = false;
  if (root) {
    const records = await readDirectory(reader, root, directoryBlockSize);
    for (const record of records) {
      const name = isoName(record.name);
      if (name !== null) rootNames.add(name);
    }
    const self = records[0];
    if (self && self.name.length === 1 && self.name[0] === 0) {
      rockRidge = await hasRockRidge(reader, self.systemUse, directoryBlockSize);
    }
  }

  let joliet: Iso9660Volume['joliet'] = null;
  const supplementary = descriptors.find((descriptor) => descriptor.type === 2 && descriptor.version === 1 && isJolietEscape(descriptor.bytes));
  if (supplementary) {
    joliet = { label: trimLabel(decodeUcs2(supplementary.bytes.subarray(40, 72))) };
    const jolietRoot = parseDirectoryRecord(supplementary.bytes.subarray(156, 190));
    if (jolietRoot) {
      for (const record of await readDirectory(reader, jolietRoot, directoryBlockSize)) {
        const name = jolietName(record.name);
        if (name !== null) rootNames.add(name);
      }
    }
  }

  return {
    volumeId: trimLabel(pvd.toString('latin1', 40, 72)),
    volumeBytes,
    createdAt: parseDecDateTime(pvd.subarray(813, 830)),
    joliet,
    rockRidge,
    rootNames,
  };
}

/**
 * ISO 9660 8.4.26.1: sixteen ASCII digits YYYYMMDDHHMMSScc and a signed offset from GMT in
 * 15-minute units. All zero digits mean "not specified".
 * @internal exported for its tests
 */
export function parseDecDateTime(field: Buffer): string | null {
  if (field.length < 17) return null;
  const digits = field.toString('latin1', 0, 16);
  if (!/^\d{16}$/.test(digits) || /^0+$/.test(digits)) return null;
  const part = (start: number, length: number): number => Number(digits.slice(start, start + length));
  const [year, month, day, hour, minute, second, centis] = [part(0, 4), part(4, 2), part(6, 2), part(8, 2), part(10, 2), part(12, 2), part(14, 2)];
  const offsetQuarters = field.readInt8(16);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) return null;
  if (offsetQuarters < -48 || offsetQuarters > 52) return null;
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  const local = new Date(0);
  local.setUTCFullYear(year, month - 1, day);
  local.setUTCHours(hour, minute, second, centis * 10);
  // Dates roll 31 February over into March; such a field is garbage, not a date.
  if (local.getUTCMonth() !== month - 1 || local.getUTCDate() !== day) return null;
  return new Date(local.getTime() - offsetQuarters * 15 * 60_000).toISOString();
}

function isJolietEscape(descriptor: Buffer): boolean {
  const escapes = descriptor.subarray(88, 120);
  for (let index = 0; index + 2 < escapes.length; index += 1) {
    if (escapes[index] === 0x25 && escapes[index + 1] === 0x2f) {
      const level = escapes[index + 2];
      if (level === 0x40 || level === 0x43 || level === 0x45) return true;
    }
  }
  return false;
}

function parseDirectoryRecord(bytes: Buffer): DirectoryRecord | null {
  const length = bytes[0] ?? 0;
  if (length < 34 || bytes.length < length) return null;
  const nameLength = bytes[32] ?? 0;
  if (33 + nameLength > length) return null;
  const systemUseStart = 33 + nameLength + (nameLength % 2 === 0 ? 1 : 0);
  return {
    extent: bytes.readUInt32LE(2),
    dataLength: bytes.readUInt32LE(10),
    isDirectory: ((bytes[25] ?? 0) & 0x02) !== 0,
    name: bytes.subarray(33, 33 + nameLength),
    systemUse: bytes.subarray(Math.min(systemUseStart, length), length),
  };
}

/** Records never cross a logical block; a zero length byte means "continue in the next block". */
async function readDirectory(reader: BlockReader, directory: DirectoryRecord, blockSize: number): Promise<DirectoryRecord[]> {
  if (!directory.isDirectory) return [];
  const wanted = Math.min(directory.dataLength, MAX_DIRECTORY_BYTES);
  const data = await reader.read(directory.extent * blockSize, wanted);
  if (data === null) return [];
  const records: DirectoryRecord[] = [];
  for (let blockStart = 0; blockStart < data.length; blockStart += blockSize) {
    const block = data.subarray(blockStart, blockStart + blockSize);
    let position = 0;
    while (position < block.length) {
      const length = block[position] ?? 0;
      if (length === 0) break;
      const record = parseDirectoryRecord(block.subarray(position, position + length));
      if (!record) break;
      records.push(record);
      position += length;
    }
  }
  return records;
}

/** Skips "." and ".." (names 0x00 and 0x01), drops the ";1" version and a trailing dot. */
function isoName(raw: Buffer): string | null {
  if (raw.length === 1 && (raw[0] === 0 || raw[0] === 1)) return null;
  return raw.toString('latin1').replace(/;\d*$/, '').replace(/\.$/, '').toUpperCase();
}

function jolietName(raw: Buffer): string | null {
  if (raw.length === 1 && (raw[0] === 0 || raw[0] === 1)) return null;
  return decodeUcs2(raw).replace(/;\d*$/, '').replace(/\.$/, '').toUpperCase();
}

export function decodeUcs2(bytes: Buffer): string {
  const even = bytes.subarray(0, bytes.length - (bytes.length % 2));
  const swapped = Buffer.from(even);
  swapped.swap16();
  return swapped.toString('utf16le');
}

/** Identifiers are padded with spaces (and sometimes NULs); an empty one is no label. */
export function trimLabel(text: string): string | null {
  const trimmed = text.replace(/[\s\0]+$/u, '').replace(/^[\s\0]+/u, '');
  return trimmed === '' ? null : trimmed;
}

/**
 * Rock Ridge (RRIP on top of SUSP): the root's "." record starts its system use area with an SP
 * entry, followed by Rock Ridge entries, possibly continued in CE areas.
 */
async function hasRockRidge(reader: BlockReader, systemUse: Buffer, blockSize: number): Promise<boolean> {
  const first = readSuspEntries(systemUse);
  const sharing = first.entries[0];
  if (sharing?.signature !== 'SP' || sharing.data.length < 3 || sharing.data[0] !== 0xbe || sharing.data[1] !== 0xef) return false;

  let pending = first;
  const seen = new Set<string>();
  for (let hop = 0; hop <= MAX_CONTINUATIONS; hop += 1) {
    if (pending.entries.some((entry) => ROCK_RIDGE_SIGNATURES.has(entry.signature))) return true;
    const next = pending.continuation;
    if (!next) return false;
    const key = `${next.block}:${next.offset}`;
    if (seen.has(key)) return false;
    seen.add(key);
    const area = await reader.read(next.block * blockSize + next.offset, Math.min(next.length, blockSize));
    if (area === null) return false;
    pending = readSuspEntries(area);
  }
  return false;
}

interface SuspEntry {
  signature: string;
  data: Buffer;
}

function readSuspEntries(area: Buffer): { entries: SuspEntry[]; continuation: { block: number; offset: number; length: number } | null } {
  const entries: SuspEntry[] = [];
  let continuation: { block: number; offset: number; length: number } | null = null;
  let position = 0;
  while (position + 4 <= area.length) {
    const length = area[position + 2] ?? 0;
    if (length < 4 || position + length > area.length) break;
    const signature = area.toString('latin1', position, position + 2);
    const data = area.subarray(position + 4, position + length);
    if (signature === 'ST') break;
    if (signature === 'CE' && data.length >= 24) {
      continuation = { block: data.readUInt32LE(0), offset: data.readUInt32LE(8), length: data.readUInt32LE(16) };
    }
    entries.push({ signature, data });
    position += length;
  }
  return { entries, continuation };
}
