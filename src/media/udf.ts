import type { BlockReader } from './block-reader.js';
import { decodeUcs2, trimLabel } from './iso9660.js';

/**
 * UDF (ECMA-167 / OSTA UDF 1.02-2.60) as far as the probe needs it: labels, the end of the
 * volume, and the names in the root directory. Every structure is validated by its descriptor
 * tag (checksum and CRC) before use, and every chain is bounded, so a damaged or hostile medium
 * yields less information instead of an exception or an endless loop.
 */
export interface UdfVolume {
  blockSize: number;
  /** Primary volume descriptor's volume identifier. */
  primaryVolumeId: string | null;
  /** Logical volume descriptor's logical volume identifier (what desktops show as the label). */
  logicalVolumeId: string | null;
  /** Primary volume descriptor's recording time, ISO 8601 UTC. */
  recordedAt: string | null;
  /** End of the volume in bytes: partitions, descriptor sequences and trailing anchors. */
  volumeBytes: number | null;
  /** Names in the root directory, upper case; empty when the root could not be read. */
  rootNames: Set<string>;
}

const TAG = {
  primaryVolume: 1,
  anchor: 2,
  volumePointer: 3,
  partition: 5,
  logicalVolume: 6,
  terminating: 8,
  fileSet: 256,
  fileIdentifier: 257,
  allocationExtent: 258,
  indirectEntry: 259,
  fileEntry: 261,
  extendedFileEntry: 266,
} as const;

const ANCHOR_SECTOR = 256;
const BLOCK_SIZES = [2048, 512, 1024, 4096];
const MAX_SEQUENCE_BLOCKS = 256;
const MAX_HOPS = 16;
const MAX_EXTENTS = 1024;
const MAX_DIRECTORY_BYTES = 1024 * 1024;
/** Trailing anchors sit at N-1 and N-257 of a volume of N blocks; look a little further. */
const TRAILING_ANCHOR_WINDOW = 1024;

interface Tag {
  id: number;
  location: number;
}

interface Extent {
  start: number;
  length: number;
}

interface PartitionDescriptor {
  sequence: number;
  number: number;
  start: number;
  length: number;
}

/** Maps a logical block number of one partition to an absolute block on the medium. */
type Locate = (logicalBlock: number) => Promise<number | null>;

export async function readUdf(reader: BlockReader, options: { blockSizeHint: number; deviceSizeBytes: number | null }): Promise<UdfVolume | null> {
  const found = await findAnchor(reader, options);
  if (!found) return null;
  const { blockSize, anchor } = found;
  const block = (index: number): Promise<Buffer | null> => readBlock(reader, blockSize, index);

  const main = extentOf(anchor, 16, blockSize);
  const reserve = extentOf(anchor, 24, blockSize);
  const sequence = await preferComplete(await readVolumeDescriptorSequence(block, main, blockSize), () =>
    readVolumeDescriptorSequence(block, reserve, blockSize),
  );
  if (!sequence) return null;

  const { primary, logical, partitions } = sequence;
  const locators = logical ? await partitionLocators(block, logical, partitions, blockSize) : [];
  const rootNames = logical ? await readRootNames(block, logical, locators, blockSize) : new Set<string>();

  return {
    blockSize,
    primaryVolumeId: primary ? readDString(primary.subarray(24, 56)) : null,
    logicalVolumeId: logical ? readDString(logical.subarray(84, 212)) : null,
    recordedAt: primary ? parseTimestamp(primary.subarray(376, 388)) : null,
    volumeBytes: await volumeEnd(block, { blockSize, partitions, main, reserve, deviceSizeBytes: options.deviceSizeBytes }),
    rootNames,
  };
}

async function findAnchor(
  reader: BlockReader,
  options: { blockSizeHint: number; deviceSizeBytes: number | null },
): Promise<{ blockSize: number; anchor: Buffer } | null> {
  const candidates = [...new Set([options.blockSizeHint, ...BLOCK_SIZES])];
  for (const blockSize of candidates) {
    const anchor = await readBlock(reader, blockSize, ANCHOR_SECTOR);
    if (anchor && isTag(anchor, TAG.anchor, ANCHOR_SECTOR)) return { blockSize, anchor };
  }
  // ECMA-167 allows a volume whose first anchor is lost to be found from its last sector.
  if (options.deviceSizeBytes) {
    for (const blockSize of candidates) {
      const last = Math.floor(options.deviceSizeBytes / blockSize) - 1;
      for (const location of [last, last - 256]) {
        if (location <= ANCHOR_SECTOR) continue;
        const anchor = await readBlock(reader, blockSize, location);
        if (anchor && isTag(anchor, TAG.anchor, location)) return { blockSize, anchor };
      }
    }
  }
  return null;
}

interface VolumeDescriptorSequence {
  primary: Buffer | null;
  logical: Buffer | null;
  partitions: PartitionDescriptor[];
}

/** ECMA-167 3/8.4.2: of equal descriptors the one with the highest sequence number wins. */
async function readVolumeDescriptorSequence(
  block: (index: number) => Promise<Buffer | null>,
  first: Extent,
  blockSize: number,
): Promise<VolumeDescriptorSequence | null> {
  let primary: Buffer | null = null;
  let logical: Buffer | null = null;
  const partitions = new Map<number, PartitionDescriptor>();
  const visited = new Set<number>();
  let extent: Extent | null = first;
  let blocksRead = 0;

  for (let hop = 0; extent && hop < MAX_HOPS; hop += 1) {
    if (visited.has(extent.start)) break;
    visited.add(extent.start);
    const current: Extent = extent;
    extent = null;
    const count = Math.ceil(current.length / blockSize);
    for (let offset = 0; offset < count && blocksRead < MAX_SEQUENCE_BLOCKS; offset += 1) {
      blocksRead += 1;
      const location = current.start + offset;
      const bytes = await block(location);
      const tag = bytes ? readTag(bytes) : null;
      // A damaged descriptor is skipped (its copy in the reserve sequence may be intact);
      // a terminator or an unrecorded (all zero, tag id 0) block ends the sequence.
      if (!bytes || !tag) continue;
      if (tag.id === TAG.terminating || tag.id === 0) break;
      if (tag.id === TAG.volumePointer) {
        extent = extentOf(bytes, 20, blockSize);
        break;
      }
      const number = bytes.readUInt32LE(16);
      if (tag.id === TAG.primaryVolume && (!primary || number >= primary.readUInt32LE(16))) primary = bytes;
      if (tag.id === TAG.logicalVolume && (!logical || number >= logical.readUInt32LE(16))) logical = bytes;
      if (tag.id === TAG.partition) {
        const partitionNumber = bytes.readUInt16LE(22);
        const known = partitions.get(partitionNumber);
        if (!known || number >= known.sequence) {
          partitions.set(partitionNumber, { sequence: number, number: partitionNumber, start: bytes.readUInt32LE(188), length: bytes.readUInt32LE(192) });
        }
      }
    }
  }
  if (!primary && !logical && partitions.size === 0) return null;
  return { primary, logical, partitions: [...partitions.values()] };
}

/** The main sequence unless it lost its logical volume or partition and the reserve copy did not. */
async function preferComplete(
  main: VolumeDescriptorSequence | null,
  readReserve: () => Promise<VolumeDescriptorSequence | null>,
): Promise<VolumeDescriptorSequence | null> {
  const complete = (sequence: VolumeDescriptorSequence | null): boolean => sequence !== null && sequence.logical !== null && sequence.partitions.length > 0;
  if (complete(main)) return main;
  const reserve = await readReserve();
  return complete(reserve) ? reserve : (main ?? reserve);
}

/**
 * One locator per partition map of the logical volume. Type 1 and sparable maps address the
 * partition directly (sparing only relocates defective packets); a metadata partition (UDF 2.50,
 * used by Blu-ray) is addressed through the allocation of its metadata file. Virtual (VAT)
 * partitions of sequentially recorded discs are not followed.
 */
async function partitionLocators(
  block: (index: number) => Promise<Buffer | null>,
  logical: Buffer,
  partitions: PartitionDescriptor[],
  blockSize: number,
): Promise<Array<Locate | null>> {
  const physical = (partitionNumber: number): Locate | null => {
    const partition = partitions.find((candidate) => candidate.number === partitionNumber);
    if (!partition) return null;
    return async (logicalBlock) => (logicalBlock < partition.length ? partition.start + logicalBlock : null);
  };

  const tableLength = Math.min(logical.readUInt32LE(264), logical.length - 440);
  const mapCount = logical.readUInt32LE(268);
  const locators: Array<Locate | null> = [];
  let position = 440;
  for (let index = 0; index < mapCount && index < 64 && position + 2 <= 440 + tableLength; index += 1) {
    const type = logical[position] ?? 0;
    const length = logical[position + 1] ?? 0;
    if (length < 6 || position + length > 440 + tableLength) break;
    const map = logical.subarray(position, position + length);
    position += length;
    if (type === 1) {
      locators.push(physical(map.readUInt16LE(4)));
      continue;
    }
    if (type !== 2 || map.length < 64) {
      locators.push(null);
      continue;
    }
    const identifier = map.toString('latin1', 5, 28).replace(/\0+$/, '');
    const underlying = physical(map.readUInt16LE(38));
    if (identifier.startsWith('*UDF Sparable Partition')) {
      locators.push(underlying);
    } else if (identifier.startsWith('*UDF Metadata Partition') && underlying) {
      locators.push(await metadataLocator(block, underlying, [map.readUInt32LE(40), map.readUInt32LE(44)], blockSize));
    } else {
      locators.push(null);
    }
  }
  return locators;
}

async function metadataLocator(
  block: (index: number) => Promise<Buffer | null>,
  underlying: Locate,
  fileLocations: number[],
  blockSize: number,
): Promise<Locate | null> {
  for (const location of fileLocations) {
    const absolute = await underlying(location);
    if (absolute === null) continue;
    const entry = await block(absolute);
    if (!entry || !isFileEntry(entry)) continue;
    const extents = await allocationExtents(block, entry, underlying, [], blockSize);
    if (!extents || extents === 'inline') continue;
    return async (logicalBlock) => {
      let fileBlock = 0;
      for (const extent of extents) {
        const blocks = Math.ceil(extent.length / blockSize);
        if (logicalBlock < fileBlock + blocks) return extent.type === 0 ? extent.locate(extent.block + (logicalBlock - fileBlock)) : null;
        fileBlock += blocks;
      }
      return null;
    };
  }
  return null;
}

async function readRootNames(
  block: (index: number) => Promise<Buffer | null>,
  logical: Buffer,
  locators: Array<Locate | null>,
  blockSize: number,
): Promise<Set<string>> {
  const names = new Set<string>();
  const fileSetAddress = longAddress(logical, 248);
  const fileSetLocate = locators[fileSetAddress.partition];
  if (!fileSetLocate) return names;
  const fileSetBlock = await fileSetLocate(fileSetAddress.block);
  const fileSet = fileSetBlock === null ? null : await block(fileSetBlock);
  if (!fileSet || !isTag(fileSet, TAG.fileSet)) return names;

  const root = await readIcb(block, longAddress(fileSet, 400), locators);
  if (!root) return names;
  const data = await fileData(block, root.entry, root.locate, locators, blockSize);
  if (!data) return names;

  let position = 0;
  while (position + 38 <= data.length) {
    const tag = readTag(data, position);
    if (!tag || tag.id !== TAG.fileIdentifier) break;
    const characteristics = data[position + 18] ?? 0;
    const identifierLength = data[position + 19] ?? 0;
    const implementationUseLength = data.readUInt16LE(position + 36);
    const identifierStart = position + 38 + implementationUseLength;
    const total = (38 + implementationUseLength + identifierLength + 3) & ~3;
    if (identifierStart + identifierLength > data.length) break;
    const isParent = (characteristics & 0x08) !== 0;
    const isDeleted = (characteristics & 0x04) !== 0;
    if (!isParent && !isDeleted && identifierLength > 0) {
      const name = decodeCs0(data.subarray(identifierStart, identifierStart + identifierLength));
      if (name !== null) names.add(name.toUpperCase());
    }
    position += total;
  }
  return names;
}

/** Follows indirect entries (ICB strategy 4096) to the file entry itself. */
async function readIcb(
  block: (index: number) => Promise<Buffer | null>,
  address: { block: number; partition: number },
  locators: Array<Locate | null>,
): Promise<{ entry: Buffer; locate: Locate } | null> {
  const visited = new Set<string>();
  let current = address;
  for (let hop = 0; hop < MAX_HOPS; hop += 1) {
    const key = `${current.partition}:${current.block}`;
    if (visited.has(key)) return null;
    visited.add(key);
    const locate = locators[current.partition];
    if (!locate) return null;
    const absolute = await locate(current.block);
    const entry = absolute === null ? null : await block(absolute);
    if (!entry) return null;
    if (isFileEntry(entry)) return { entry, locate };
    if (!isTag(entry, TAG.indirectEntry)) return null;
    current = longAddress(entry, 36);
  }
  return null;
}

interface AllocatedExtent {
  /** 0 recorded, 1 allocated but not recorded, 2 neither (ECMA-167 4/14.14.1.1). */
  type: number;
  length: number;
  block: number;
  locate: Locate;
}

function isFileEntry(entry: Buffer): boolean {
  return isTag(entry, TAG.fileEntry) || isTag(entry, TAG.extendedFileEntry);
}

function entryLayout(entry: Buffer): { informationLength: number; descriptorsStart: number; descriptorsLength: number; descriptorType: number } | null {
  const extended = readTag(entry)?.id === TAG.extendedFileEntry;
  const eaLengthAt = extended ? 208 : 168;
  const base = extended ? 216 : 176;
  if (entry.length < base) return null;
  const informationLength = Number(entry.readBigUInt64LE(56));
  const descriptorsStart = base + entry.readUInt32LE(eaLengthAt);
  const descriptorsLength = entry.readUInt32LE(eaLengthAt + 4);
  if (descriptorsStart + descriptorsLength > entry.length) return null;
  return { informationLength, descriptorsStart, descriptorsLength, descriptorType: entry.readUInt16LE(34) & 0x07 };
}

/**
 * The extents of a file, following allocation extent descriptors (extent type 3). Short
 * descriptors address the partition of the entry itself, long and extended ones name theirs.
 */
async function allocationExtents(
  block: (index: number) => Promise<Buffer | null>,
  entry: Buffer,
  ownLocate: Locate,
  locators: Array<Locate | null>,
  blockSize: number,
): Promise<AllocatedExtent[] | 'inline' | null> {
  const layout = entryLayout(entry);
  if (!layout) return null;
  if (layout.descriptorType === 3) return 'inline';
  const size = [8, 16, 20][layout.descriptorType];
  if (size === undefined) return null;

  const extents: AllocatedExtent[] = [];
  const visited = new Set<number>();
  let area = entry.subarray(layout.descriptorsStart, layout.descriptorsStart + layout.descriptorsLength);
  let areaLocate = ownLocate;
  for (let hop = 0; hop < MAX_HOPS; hop += 1) {
    let next: { block: number; locate: Locate } | null = null;
    for (let position = 0; position + size <= area.length && extents.length < MAX_EXTENTS; position += size) {
      const raw = area.readUInt32LE(position);
      const length = raw & 0x3fffffff;
      const type = raw >>> 30;
      if (length === 0) break;
      let target: { block: number; locate: Locate | null };
      if (size === 8) target = { block: area.readUInt32LE(position + 4), locate: areaLocate };
      else {
        const at = size === 16 ? position + 4 : position + 12;
        target = { block: area.readUInt32LE(at), locate: locators[area.readUInt16LE(at + 4)] ?? null };
      }
      if (!target.locate) return extents;
      if (type === 3) {
        next = { block: target.block, locate: target.locate };
        break;
      }
      extents.push({ type, length, block: target.block, locate: target.locate });
    }
    if (!next) return extents;
    const absolute = await next.locate(next.block);
    if (absolute === null || visited.has(absolute)) return extents;
    visited.add(absolute);
    const continuation = await block(absolute);
    if (!continuation || !isTag(continuation, TAG.allocationExtent)) return extents;
    const length = Math.min(continuation.readUInt32LE(20), blockSize - 24);
    area = continuation.subarray(24, 24 + length);
    areaLocate = next.locate;
  }
  return extents;
}

async function fileData(
  block: (index: number) => Promise<Buffer | null>,
  entry: Buffer,
  ownLocate: Locate,
  locators: Array<Locate | null>,
  blockSize: number,
): Promise<Buffer | null> {
  const layout = entryLayout(entry);
  if (!layout) return null;
  const wanted = Math.min(layout.informationLength, MAX_DIRECTORY_BYTES);
  const extents = await allocationExtents(block, entry, ownLocate, locators, blockSize);
  if (extents === null) return null;
  if (extents === 'inline') return entry.subarray(layout.descriptorsStart, layout.descriptorsStart + Math.min(layout.descriptorsLength, wanted));

  const parts: Buffer[] = [];
  let collected = 0;
  for (const extent of extents) {
    if (collected >= wanted) break;
    const length = Math.min(extent.length, wanted - collected);
    if (extent.type !== 0) {
      parts.push(Buffer.alloc(length));
      collected += length;
      continue;
    }
    for (let offset = 0; offset < length; offset += blockSize) {
      const absolute = await extent.locate(extent.block + offset / blockSize);
      const bytes = absolute === null ? null : await block(absolute);
      if (!bytes) return Buffer.concat(parts);
      const piece = bytes.subarray(0, Math.min(blockSize, length - offset));
      parts.push(piece);
      collected += piece.length;
    }
  }
  return Buffer.concat(parts);
}

/**
 * The volume ends after its last partition and descriptor sequence, or at a trailing anchor
 * beyond them. An anchor on the device's last sector proves the volume fills the device;
 * otherwise the blocks just after the partitions are searched for the trailing anchors.
 */
async function volumeEnd(
  block: (index: number) => Promise<Buffer | null>,
  layout: { blockSize: number; partitions: PartitionDescriptor[]; main: Extent; reserve: Extent; deviceSizeBytes: number | null },
): Promise<number | null> {
  const { blockSize } = layout;
  const partitionEnd = Math.max(0, ...layout.partitions.map((partition) => partition.start + partition.length));
  const sequenceEnd = Math.max(...[layout.main, layout.reserve].map((extent) => extent.start + Math.ceil(extent.length / blockSize)));
  let end = Math.max(partitionEnd, sequenceEnd);
  if (end <= ANCHOR_SECTOR) return null;

  const deviceBlocks = layout.deviceSizeBytes ? Math.floor(layout.deviceSizeBytes / blockSize) : null;
  if (deviceBlocks !== null && deviceBlocks > end) {
    const lastSector = deviceBlocks - 1;
    const anchor = await block(lastSector);
    if (anchor && isTag(anchor, TAG.anchor, lastSector)) return deviceBlocks * blockSize;
  }
  const windowStart = partitionEnd > ANCHOR_SECTOR ? partitionEnd : end;
  const windowEnd = Math.min(Math.max(end, windowStart) + 257, windowStart + TRAILING_ANCHOR_WINDOW, deviceBlocks ?? Number.MAX_SAFE_INTEGER);
  for (let location = windowStart; location < windowEnd; location += 1) {
    const candidate = await block(location);
    // Past the recorded area a drive answers each read with a slow error: stop at the first.
    if (!candidate) break;
    if (isTag(candidate, TAG.anchor, location)) end = Math.max(end, location + 1);
  }
  return end * blockSize;
}

async function readBlock(reader: BlockReader, blockSize: number, index: number): Promise<Buffer | null> {
  const bytes = await reader.read(index * blockSize, blockSize);
  return bytes && bytes.length === blockSize ? bytes : null;
}

function extentOf(bytes: Buffer, offset: number, blockSize: number): Extent {
  const length = Math.min(bytes.readUInt32LE(offset), MAX_SEQUENCE_BLOCKS * blockSize);
  return { length, start: bytes.readUInt32LE(offset + 4) };
}

function longAddress(bytes: Buffer, offset: number): { block: number; partition: number } {
  return { block: bytes.readUInt32LE(offset + 4), partition: bytes.readUInt16LE(offset + 8) };
}

function isTag(bytes: Buffer, id: number, location?: number): boolean {
  const tag = readTag(bytes);
  return tag !== null && tag.id === id && (location === undefined || tag.location === location);
}

/** ECMA-167 3/7.2: a tag is valid when its checksum and its CRC over the descriptor match. */
function readTag(bytes: Buffer, offset = 0): Tag | null {
  if (offset + 16 > bytes.length) return null;
  let sum = 0;
  for (let index = 0; index < 16; index += 1) if (index !== 4) sum += bytes[offset + index] ?? 0;
  if ((sum & 0xff) !== bytes[offset + 4]) return null;
  const crcLength = bytes.readUInt16LE(offset + 10);
  if (offset + 16 + crcLength > bytes.length) return null;
  if (crc16(bytes.subarray(offset + 16, offset + 16 + crcLength)) !== bytes.readUInt16LE(offset + 8)) return null;
  return { id: bytes.readUInt16LE(offset), location: bytes.readUInt32LE(offset + 12) };
}

const CRC_TABLE = Array.from({ length: 256 }, (_, byte) => {
  let crc = byte << 8;
  for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  return crc;
});

/**
 * CRC-ITU-T (polynomial 0x1021, initial value 0), as ECMA-167 uses it for descriptor tags.
 * @internal exported for its tests
 */
export function crc16(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) crc = ((crc << 8) & 0xffff) ^ (CRC_TABLE[((crc >> 8) ^ byte) & 0xff] ?? 0);
  return crc;
}

/** OSTA CS0 compressed Unicode: a compression id (8 or 16 bits per character), then characters. */
function decodeCs0(bytes: Buffer): string | null {
  const compression = bytes[0];
  const body = bytes.subarray(1);
  if (compression === 8 || compression === 254) return body.toString('latin1');
  if (compression === 16 || compression === 255) return decodeUcs2(body);
  return null;
}

/** A dstring: CS0 characters padded to the field, whose last byte says how many bytes are used. */
function readDString(field: Buffer): string | null {
  const used = field[field.length - 1] ?? 0;
  if (used === 0 || used >= field.length) return null;
  const text = decodeCs0(field.subarray(0, used));
  return text === null ? null : trimLabel(text);
}

/**
 * ECMA-167 1/7.3 timestamp; the time zone is minutes east of UTC, -2047 meaning unknown.
 */
export function parseTimestamp(field: Buffer): string | null {
  if (field.length < 12) return null;
  const typeAndZone = field.readUInt16LE(0);
  const rawZone = typeAndZone & 0x0fff;
  const zone = rawZone & 0x800 ? rawZone - 0x1000 : rawZone;
  const year = field.readInt16LE(2);
  const [month, day, hour, minute, second, centis] = [field[4] ?? 0, field[5] ?? 0, field[6] ?? 0, field[7] ?? 0, field[8] ?? 0, field[9] ?? 0];
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59 || centis > 99) return null;
  const local = new Date(0);
  local.setUTCFullYear(year, month - 1, day);
  local.setUTCHours(hour, minute, second, centis * 10);
  if (local.getUTCMonth() !== month - 1 || local.getUTCDate() !== day) return null;
  const offsetMinutes = zone === -2047 || zone < -1440 || zone > 1440 ? 0 : zone;
  return new Date(local.getTime() - offsetMinutes * 60_000).toISOString();
}
