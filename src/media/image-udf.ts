import {
  IMAGE_LIMITS,
  type ImageExtent,
  type ImageFileSystem,
  ImageFormatError,
  type ImageNode,
  type ImageSource,
  checkExtents,
  corrupt,
  isSafeName,
  limitExceeded,
  readWhole,
  unsupported,
} from './image-tree.js';
import { decodeUcs2 } from './iso9660.js';
import { parseTimestamp } from './udf.js';

/**
 * UDF (ECMA-167 with the OSTA UDF profile) as DVDs, BDs and mkudffs write it: the anchor at block
 * 256, the volume descriptor sequence's partition and logical volume, the file set, and file
 * entries (plain and extended) with short, long or embedded allocation. The metadata partition of
 * UDF 2.50+ is mapped through its metadata file, or its mirror file when the metadata file's entry
 * cannot be read; virtual (VAT) and sparable partitions are refused.
 */

const ANCHOR_BLOCK = 256;
const BLOCK_SIZES = [2048, 512, 1024, 4096];
const MAX_SEQUENCE_BLOCKS = 64;
const MAX_PARTITION_MAPS = 8;
/** Allocation descriptor lists continue in further blocks; bound the chain. */
const MAX_AD_CONTINUATIONS = 64;

const TAG = {
  anchor: 2,
  partition: 5,
  logicalVolume: 6,
  terminator: 8,
  fileSet: 256,
  fileIdentifier: 257,
  allocationExtent: 258,
  file: 261,
  extendedFile: 266,
};
const FILE_TYPE = { directory: 4, file: 5 };

interface Tag {
  id: number;
  location: number;
}

type PartitionMap = { kind: 'physical'; number: number; start: number; length: number } | { kind: 'metadata'; physical: number; runs: MetadataRun[] };
/** Metadata partition blocks [first, first + count) lie at physical partition block `at`. */
interface MetadataRun {
  first: number;
  count: number;
  at: number;
}

function readTag(bytes: Buffer, offset = 0): Tag | null {
  if (bytes.length < offset + 16) return null;
  let sum = 0;
  for (let index = 0; index < 16; index += 1) if (index !== 4) sum = (sum + (bytes[offset + index] ?? 0)) & 0xff;
  if (sum !== bytes[offset + 4]) return null;
  return { id: bytes.readUInt16LE(offset), location: bytes.readUInt32LE(offset + 12) };
}

/** The domain identifier's revision is BCD: 0x0250 is UDF 2.50. */
function revisionText(revision: number): string {
  return `${(revision >> 8).toString(16)}.${(revision & 0xff).toString(16).padStart(2, '0')}`;
}

function decodeCs0(bytes: Buffer): string | null {
  const compression = bytes[0];
  if (compression === 8 || compression === 254) return bytes.subarray(1).toString('latin1');
  if (compression === 16 || compression === 255) return decodeUcs2(bytes.subarray(1));
  return null;
}

export async function openUdf(source: ImageSource): Promise<ImageFileSystem | null> {
  let blockSize = 0;
  let anchor: Buffer | null = null;
  for (const size of BLOCK_SIZES) {
    if ((ANCHOR_BLOCK + 1) * size > source.size) continue;
    const bytes = await source.read(ANCHOR_BLOCK * size, 512, 'the UDF anchor');
    const tag = readTag(bytes);
    if (tag?.id === TAG.anchor && tag.location === ANCHOR_BLOCK) {
      blockSize = size;
      anchor = bytes;
      break;
    }
  }
  if (anchor === null) return null;

  const block = (index: number, what: string): Promise<Buffer> => source.read(index * blockSize, blockSize, what);

  const sequenceLength = Math.min(Math.floor(anchor.readUInt32LE(16) / blockSize), MAX_SEQUENCE_BLOCKS);
  const sequenceStart = anchor.readUInt32LE(20);
  const partitions = new Map<number, { number: number; start: number; length: number }>();
  let logicalVolume: Buffer | null = null;
  for (let index = 0; index < sequenceLength; index += 1) {
    const descriptor = await block(sequenceStart + index, 'a UDF volume descriptor');
    const tag = readTag(descriptor);
    if (tag === null || tag.id === TAG.terminator) break;
    if (tag.id === TAG.partition && !partitions.has(descriptor.readUInt16LE(22))) {
      const number = descriptor.readUInt16LE(22);
      partitions.set(number, { number, start: descriptor.readUInt32LE(188), length: descriptor.readUInt32LE(192) });
    }
    if (tag.id === TAG.logicalVolume && logicalVolume === null) logicalVolume = descriptor;
  }
  if (logicalVolume === null) throw corrupt('the UDF volume has no logical volume descriptor');
  if (logicalVolume.readUInt32LE(212) !== blockSize) throw unsupported('the UDF logical block size differs from the anchor’s');
  const revision = logicalVolume.readUInt16LE(216 + 24);

  const mapCount = logicalVolume.readUInt32LE(268);
  if (mapCount < 1 || mapCount > MAX_PARTITION_MAPS) throw corrupt(`the UDF volume has ${mapCount} partition maps`);
  const maps: PartitionMap[] = [];
  const pendingMetadata: Array<{ index: number; partition: number; fileLocations: [number, number] }> = [];
  let at = 440;
  for (let index = 0; index < mapCount; index += 1) {
    const type = logicalVolume[at];
    const length = logicalVolume[at + 1] ?? 0;
    if (length < 6 || at + length > logicalVolume.length) throw corrupt('a UDF partition map is malformed');
    if (type === 1) {
      const partition = partitions.get(logicalVolume.readUInt16LE(at + 4));
      if (partition === undefined) throw corrupt('a UDF partition map names a partition that is not described');
      maps.push({ kind: 'physical', ...partition });
    } else {
      const identifier = logicalVolume.toString('latin1', at + 5, at + 28).replace(/\0+$/u, '');
      if (identifier !== '*UDF Metadata Partition' || length < 64) {
        throw unsupported(`UDF revision ${revisionText(revision)} with a "${identifier}" partition is not supported`, { revision });
      }
      pendingMetadata.push({
        index,
        partition: logicalVolume.readUInt16LE(at + 38),
        fileLocations: [logicalVolume.readUInt32LE(at + 40), logicalVolume.readUInt32LE(at + 44)],
      });
      maps.push({ kind: 'metadata', physical: -1, runs: [] });
    }
    at += length;
  }

  const position = (reference: number, logicalBlock: number): number => {
    const map = maps[reference];
    if (map === undefined) throw corrupt(`a UDF address names partition reference ${reference}`);
    if (map.kind === 'physical') {
      if (logicalBlock >= map.length) throw corrupt('a UDF address lies past its partition');
      return (map.start + logicalBlock) * blockSize;
    }
    const run = map.runs.find((candidate) => logicalBlock >= candidate.first && logicalBlock < candidate.first + candidate.count);
    if (run === undefined) throw corrupt('a UDF metadata address lies outside the metadata file');
    return position(map.physical, run.at + logicalBlock - run.first);
  };

  /** Byte runs of the image for `length` bytes from a logical block, split where the metadata file is. */
  const translate = (reference: number, logicalBlock: number, length: number): ImageExtent[] => {
    const map = maps[reference];
    if (map?.kind !== 'metadata') return [{ kind: 'data', position: position(reference, logicalBlock), length }];
    const runs: ImageExtent[] = [];
    let remaining = length;
    let current = logicalBlock;
    while (remaining > 0) {
      const run = map.runs.find((candidate) => current >= candidate.first && current < candidate.first + candidate.count);
      if (run === undefined) throw corrupt('a UDF metadata extent lies outside the metadata file');
      const blocks = Math.min(run.first + run.count - current, Math.ceil(remaining / blockSize));
      const bytes = Math.min(remaining, blocks * blockSize);
      runs.push({ kind: 'data', position: position(map.physical, run.at + current - run.first), length: bytes });
      if (runs.length > IMAGE_LIMITS.maxExtentsPerFile) throw limitExceeded('a UDF extent is too fragmented');
      remaining -= bytes;
      current += blocks;
    }
    return runs;
  };

  const readEntry = async (reference: number, logicalBlock: number, name: string): Promise<ImageNode | null> => {
    const entry = await source.read(position(reference, logicalBlock), blockSize, 'a UDF file entry');
    const tag = readTag(entry);
    if (tag === null || (tag.id !== TAG.file && tag.id !== TAG.extendedFile)) throw corrupt(`the UDF file entry of ${JSON.stringify(name)} is not one`);
    const strategy = entry.readUInt16LE(20);
    if (strategy !== 4) throw unsupported(`UDF ICB strategy ${strategy} is not supported`);
    const fileType = entry[27];
    const allocation = entry.readUInt16LE(34) & 0x7;
    const informationLength = Number(entry.readBigUInt64LE(56));
    const extended = tag.id === TAG.extendedFile;
    const timeAt = extended ? 92 : 84;
    const lengthsAt = extended ? 208 : 168;
    const extendedAttributes = entry.readUInt32LE(lengthsAt);
    const descriptorsLength = entry.readUInt32LE(lengthsAt + 4);
    const descriptorsStart = lengthsAt + 8 + extendedAttributes;
    if (descriptorsStart + descriptorsLength > blockSize) throw corrupt(`the UDF file entry of ${JSON.stringify(name)} overruns its block`);
    if (fileType !== FILE_TYPE.directory && fileType !== FILE_TYPE.file) return null;
    if (!Number.isSafeInteger(informationLength) || informationLength > source.size) {
      throw corrupt(`${JSON.stringify(name)} claims ${informationLength} bytes, more than the image holds`);
    }
    const extents = await allocationExtents(
      entry.subarray(descriptorsStart, descriptorsStart + descriptorsLength),
      allocation,
      reference,
      informationLength,
      name,
    );
    const node: ImageNode = {
      name,
      kind: fileType === FILE_TYPE.directory ? 'directory' : 'file',
      size: informationLength,
      mtime: parseTimestamp(entry.subarray(timeAt, timeAt + 12)),
      extents,
      key: `udf:${reference}:${logicalBlock}`,
    };
    return checkExtents(source, node);
  };

  const allocationExtents = async (descriptors: Buffer, allocation: number, reference: number, size: number, name: string): Promise<ImageExtent[]> => {
    if (allocation === 3) return [{ kind: 'inline', bytes: Buffer.from(descriptors.subarray(0, Math.min(size, descriptors.length))) }];
    if (allocation !== 0 && allocation !== 1) throw unsupported(`UDF allocation type ${allocation} is not supported`);
    const width = allocation === 0 ? 8 : 16;
    const extents: ImageExtent[] = [];
    let remaining = size;
    let list = descriptors;
    for (let hop = 0; hop <= MAX_AD_CONTINUATIONS && remaining > 0; hop += 1) {
      let next: { reference: number; block: number; length: number } | null = null;
      for (let at = 0; at + width <= list.length && remaining > 0; at += width) {
        const raw = list.readUInt32LE(at);
        const length = raw & 0x3fffffff;
        const type = raw >>> 30;
        if (length === 0) break;
        const logicalBlock = list.readUInt32LE(at + 4);
        const partition = allocation === 0 ? reference : list.readUInt16LE(at + 8);
        if (type === 3) {
          next = { reference: partition, block: logicalBlock, length };
          break;
        }
        const used = Math.min(length, remaining);
        if (type === 0) extents.push(...translate(partition, logicalBlock, used));
        else extents.push({ kind: 'zeros', length: used });
        if (extents.length > IMAGE_LIMITS.maxExtentsPerFile) throw limitExceeded(`${JSON.stringify(name)} has too many extents`);
        remaining -= used;
      }
      if (next === null || remaining === 0) break;
      if (hop === MAX_AD_CONTINUATIONS) throw limitExceeded(`the allocation of ${JSON.stringify(name)} continues too often`);
      const continuation = await source.read(position(next.reference, next.block), blockSize, 'a UDF allocation extent');
      if (readTag(continuation)?.id !== TAG.allocationExtent) throw corrupt(`the allocation of ${JSON.stringify(name)} continues nowhere`);
      const listLength = continuation.readUInt32LE(20);
      if (24 + listLength > blockSize) throw corrupt('a UDF allocation extent overruns its block');
      list = continuation.subarray(24, 24 + listLength);
    }
    if (remaining > 0) throw corrupt(`${JSON.stringify(name)} has fewer bytes allocated than its size`);
    return extents;
  };

  /**
   * The metadata partition's blocks, from the metadata file's allocation; its extents must lie in
   * the physical partition, so a bad one is noticed here, while the mirror can still stand in.
   */
  const metadataRuns = async (physical: number, partitionLength: number, fileLocation: number): Promise<MetadataRun[]> => {
    const metadataFile = await readEntryForMetadata(source, blockSize, position(physical, fileLocation));
    let first = 0;
    const runs: MetadataRun[] = [];
    for (const extent of allocationExtentsOfMetadata(metadataFile, blockSize)) {
      const count = Math.ceil(extent.length / blockSize);
      if (extent.block + count > partitionLength) throw corrupt('the UDF metadata file lies past its partition');
      runs.push({ first, count, at: extent.block });
      first += count;
    }
    return runs;
  };

  for (const pending of pendingMetadata) {
    // The map names its partition by number (UDF 2.2.10), not by its place in the map table.
    const physical = maps.findIndex((map) => map.kind === 'physical' && map.number === pending.partition);
    const partition = maps[physical];
    if (partition?.kind !== 'physical') throw corrupt('the UDF metadata partition names a partition without a map');
    // UDF 2.2.13: the metadata mirror file stands in when the metadata file cannot be read.
    const [mainLocation, mirrorLocation] = pending.fileLocations;
    let runs: MetadataRun[];
    try {
      runs = await metadataRuns(physical, partition.length, mainLocation);
    } catch (error) {
      if (!(error instanceof ImageFormatError) || (error.code !== 'image_corrupt' && error.code !== 'image_unreadable')) throw error;
      try {
        runs = await metadataRuns(physical, partition.length, mirrorLocation);
      } catch (mirrorError) {
        if (!(mirrorError instanceof ImageFormatError)) throw mirrorError;
        throw corrupt(`the UDF metadata file and its mirror are both unreadable: ${error.message}; ${mirrorError.message}`);
      }
    }
    maps[pending.index] = { kind: 'metadata', physical, runs };
  }

  const fileSetAddress = { block: logicalVolume.readUInt32LE(252), reference: logicalVolume.readUInt16LE(256) };
  const fileSet = await source.read(position(fileSetAddress.reference, fileSetAddress.block), blockSize, 'the UDF file set descriptor');
  if (readTag(fileSet)?.id !== TAG.fileSet) throw corrupt('the UDF file set descriptor is missing');
  const root = await readEntry(fileSet.readUInt16LE(408), fileSet.readUInt32LE(404), '');
  if (root?.kind !== 'directory') throw corrupt('the UDF root is not a folder');

  const cache = new Map<string, ImageNode[]>();
  const children = async (directory: ImageNode): Promise<ImageNode[]> => {
    const cached = cache.get(directory.key);
    if (cached !== undefined) return cached;
    const data = await readWhole(source, directory, `the folder ${JSON.stringify(directory.name)}`);
    const nodes: ImageNode[] = [];
    const seen = new Set<string>();
    let offset = 0;
    while (offset + 38 <= data.length) {
      const tag = readTag(data, offset);
      if (tag?.id !== TAG.fileIdentifier) throw corrupt(`the folder ${JSON.stringify(directory.name)} holds a malformed entry`, { offset });
      const characteristics = data[offset + 18] ?? 0;
      const identifierLength = data[offset + 19] ?? 0;
      const useLength = data.readUInt16LE(offset + 36);
      const total = Math.ceil((38 + useLength + identifierLength) / 4) * 4;
      if (offset + 38 + useLength + identifierLength > data.length) throw corrupt('a UDF folder entry runs past its folder');
      const identifier = data.subarray(offset + 38 + useLength, offset + 38 + useLength + identifierLength);
      const icb = { block: data.readUInt32LE(offset + 24), reference: data.readUInt16LE(offset + 28) };
      offset += total;
      // Deleted (4) and parent (8) entries are no children.
      if ((characteristics & 0x0c) !== 0 || identifierLength === 0) continue;
      if (nodes.length >= IMAGE_LIMITS.maxEntriesPerDirectory) throw limitExceeded(`a folder holds more than ${IMAGE_LIMITS.maxEntriesPerDirectory} entries`);
      const name = decodeCs0(identifier);
      if (name === null || !isSafeName(name) || seen.has(name)) continue;
      const node = await readEntry(icb.reference, icb.block, name);
      if (node === null) continue;
      seen.add(name);
      nodes.push(node);
    }
    if (cache.size >= 256) cache.clear();
    cache.set(directory.key, nodes);
    return nodes;
  };

  return { kind: 'udf', root, children };
}

/** The metadata file's own entry, which lives in the physical partition. */
async function readEntryForMetadata(source: ImageSource, blockSize: number, at: number): Promise<Buffer> {
  const entry = await source.read(at, blockSize, 'the UDF metadata file');
  const tag = readTag(entry);
  if (tag === null || (tag.id !== TAG.file && tag.id !== TAG.extendedFile)) throw corrupt('the UDF metadata file entry is missing');
  return entry;
}

/** The metadata file's short allocation descriptors: the physical blocks that hold the metadata partition. */
function allocationExtentsOfMetadata(entry: Buffer, blockSize: number): Array<{ block: number; length: number }> {
  const extended = readTag(entry)?.id === TAG.extendedFile;
  const lengthsAt = extended ? 208 : 168;
  const start = lengthsAt + 8 + entry.readUInt32LE(lengthsAt);
  const length = entry.readUInt32LE(lengthsAt + 4);
  if (start + length > blockSize) throw corrupt('the UDF metadata file entry overruns its block');
  if ((entry.readUInt16LE(34) & 0x7) !== 0) throw unsupported('the UDF metadata file uses an allocation this reader does not follow');
  const extents: Array<{ block: number; length: number }> = [];
  for (let at = start; at + 8 <= start + length; at += 8) {
    const raw = entry.readUInt32LE(at);
    if ((raw & 0x3fffffff) === 0) break;
    if (raw >>> 30 !== 0) throw unsupported('the UDF metadata file has unrecorded or continued extents');
    extents.push({ block: entry.readUInt32LE(at + 4), length: raw & 0x3fffffff });
  }
  if (extents.length === 0) throw corrupt('the UDF metadata file is empty');
  return extents;
}
