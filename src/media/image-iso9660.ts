import {
  IMAGE_LIMITS,
  type ImageExtent,
  type ImageFileSystem,
  type ImageNode,
  type ImageSource,
  checkExtents,
  corrupt,
  isSafeName,
  limitExceeded,
  readWhole,
} from './image-tree.js';
import { decodeUcs2 } from './iso9660.js';

/**
 * ISO 9660 directories with the names of its extensions: Rock Ridge names when the tree carries
 * them, else Joliet's, else the plain (8.3, upper case) names. Files larger than 4 GiB are several
 * records of the same name (multi-extent); relocated deep folders (Rock Ridge CL/RE) are followed.
 */

const DESCRIPTOR_SIZE = 2048;
const FIRST_DESCRIPTOR = 16;
const MAX_DESCRIPTORS = 64;
const BLOCK_SIZES = new Set([512, 1024, 2048, 4096]);
/** System use continuation areas chain; a hostile image can make them loop. */
const MAX_CONTINUATIONS = 16;

const FLAG_DIRECTORY = 0x02;
const FLAG_ASSOCIATED = 0x04;
const FLAG_MULTI_EXTENT = 0x80;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;

type Naming = 'rockridge' | 'joliet' | 'iso9660';

interface RawRecord {
  extent: number;
  dataLength: number;
  flags: number;
  name: Buffer;
  systemUse: Buffer;
  recordedAt: Buffer;
  interleaved: boolean;
}

interface RockRidgeInfo {
  name: string | null;
  /** CL: the folder was moved here from this block (deep paths in strict ISO 9660). */
  childLink: number | null;
  /** RE: this is the moved folder's stand-in at its new place, hidden from listings. */
  relocated: boolean;
  mode: number | null;
}

function parseRecord(bytes: Buffer, at: number): RawRecord {
  const length = bytes[at] ?? 0;
  const nameLength = bytes[at + 32] ?? 0;
  if (length < 34 || 33 + nameLength > length) throw corrupt('a directory record is malformed', { offset: at });
  const nameEnd = at + 33 + nameLength;
  const systemUseStart = nameEnd + (nameLength % 2 === 0 ? 1 : 0);
  return {
    extent: bytes.readUInt32LE(at + 2),
    dataLength: bytes.readUInt32LE(at + 10),
    recordedAt: bytes.subarray(at + 18, at + 25),
    flags: bytes[at + 25] ?? 0,
    interleaved: (bytes[at + 26] ?? 0) !== 0 || (bytes[at + 27] ?? 0) !== 0,
    name: bytes.subarray(at + 33, nameEnd),
    systemUse: bytes.subarray(Math.min(systemUseStart, at + length), at + length),
  };
}

/** ISO 9660 9.1.5: years since 1900, month, day, hour, minute, second, offset in 15-minute units. */
function recordingTime(field: Buffer): string | null {
  if (field.length < 7) return null;
  const [years = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0] = field;
  const offset = field.readInt8(6);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59 || offset < -48 || offset > 52) return null;
  const time = Date.UTC(1900 + years, month - 1, day, hour, minute, second) - offset * 15 * 60_000;
  return new Date(time).toISOString();
}

function* suspEntries(area: Buffer): Generator<{ signature: string; body: Buffer }> {
  let at = 0;
  while (at + 4 <= area.length) {
    const length = area[at + 2] ?? 0;
    if (length < 4 || at + length > area.length) return;
    yield { signature: area.toString('latin1', at, at + 2), body: area.subarray(at, at + length) };
    at += length;
  }
}

export async function openIso9660(source: ImageSource): Promise<ImageFileSystem | null> {
  if (source.size < (FIRST_DESCRIPTOR + 1) * DESCRIPTOR_SIZE) return null;
  let primary: Buffer | null = null;
  let joliet: Buffer | null = null;
  for (let index = 0; index < MAX_DESCRIPTORS; index += 1) {
    const position = (FIRST_DESCRIPTOR + index) * DESCRIPTOR_SIZE;
    if (position + DESCRIPTOR_SIZE > source.size) break;
    const descriptor = await source.read(position, DESCRIPTOR_SIZE, 'a volume descriptor');
    if (descriptor.toString('latin1', 1, 6) !== 'CD001') break;
    const type = descriptor[0];
    if (type === 255) break;
    if (type === 1 && primary === null) primary = descriptor;
    if (type === 2 && joliet === null && hasJolietEscape(descriptor)) joliet = descriptor;
  }
  if (primary === null) return null;

  const blockSize = primary.readUInt16LE(128);
  if (!BLOCK_SIZES.has(blockSize)) throw corrupt(`the logical block size ${blockSize} is not one ISO 9660 allows`);

  const rootOf = (descriptor: Buffer): ImageNode => {
    const record = parseRecord(descriptor, 156);
    return directoryNode('', record, blockSize, source);
  };

  const primaryRoot = rootOf(primary);
  const rockRidgeSkip = await rockRidgeOf(source, primaryRoot, blockSize);
  const naming: Naming = rockRidgeSkip !== null ? 'rockridge' : joliet !== null ? 'joliet' : 'iso9660';
  const root = naming === 'joliet' && joliet !== null ? rootOf(joliet) : primaryRoot;
  const cache = new Map<string, ImageNode[]>();

  const children = async (directory: ImageNode): Promise<ImageNode[]> => {
    const cached = cache.get(directory.key);
    if (cached !== undefined) return cached;
    const data = await readWhole(source, directory, `the folder ${JSON.stringify(directory.name)}`);
    const nodes = await parseDirectory(source, data, blockSize, naming, rockRidgeSkip ?? 0);
    // Directories are looked up again for every path below them; the cache is bounded like the walk.
    if (cache.size >= 256) cache.clear();
    cache.set(directory.key, nodes);
    return nodes;
  };

  return { kind: naming, root, children };
}

function hasJolietEscape(descriptor: Buffer): boolean {
  const escapes = descriptor.subarray(88, 120);
  for (let index = 0; index + 2 < escapes.length; index += 1) {
    if (escapes[index] === 0x25 && escapes[index + 1] === 0x2f && [0x40, 0x43, 0x45].includes(escapes[index + 2] ?? 0)) return true;
  }
  return false;
}

function directoryNode(name: string, record: RawRecord, blockSize: number, source: ImageSource): ImageNode {
  const node: ImageNode = {
    name,
    kind: 'directory',
    size: record.dataLength,
    mtime: recordingTime(record.recordedAt),
    extents: [{ kind: 'data', position: record.extent * blockSize, length: record.dataLength }],
    key: `iso:${record.extent}`,
  };
  return checkExtents(source, node);
}

/** The SUSP skip length when the root's "." record starts with an SP entry (Rock Ridge), else null. */
async function rockRidgeOf(source: ImageSource, root: ImageNode, blockSize: number): Promise<number | null> {
  const first = root.extents[0];
  if (first?.kind !== 'data' || first.length < 34) return null;
  const block = await source.read(first.position, Math.min(first.length, blockSize), 'the root folder');
  const self = parseRecord(block, 0);
  const area = self.systemUse;
  if (area.length >= 7 && area.toString('latin1', 0, 2) === 'SP' && area[4] === 0xbe && area[5] === 0xef) return area[6] ?? 0;
  return null;
}

async function rockRidgeInfo(source: ImageSource, systemUse: Buffer, skip: number, blockSize: number): Promise<RockRidgeInfo> {
  const info: RockRidgeInfo = { name: null, childLink: null, relocated: false, mode: null };
  const nameParts: Buffer[] = [];
  let area = systemUse.subarray(Math.min(skip, systemUse.length));
  for (let hop = 0; hop <= MAX_CONTINUATIONS; hop += 1) {
    let continuation: { position: number; length: number } | null = null;
    for (const { signature, body } of suspEntries(area)) {
      if (signature === 'NM' && body.length >= 5) {
        const flags = body[4] ?? 0;
        if ((flags & 0x06) === 0) nameParts.push(body.subarray(5));
      } else if (signature === 'PX' && body.length >= 12) {
        info.mode = body.readUInt32LE(4);
      } else if (signature === 'CL' && body.length >= 12) {
        info.childLink = body.readUInt32LE(4);
      } else if (signature === 'RE') {
        info.relocated = true;
      } else if (signature === 'CE' && body.length >= 28) {
        continuation = { position: body.readUInt32LE(4) * blockSize + body.readUInt32LE(12), length: body.readUInt32LE(20) };
      } else if (signature === 'ST') {
        break;
      }
    }
    if (continuation === null) break;
    if (continuation.length > blockSize) throw corrupt('a Rock Ridge continuation area is larger than a block');
    if (hop === MAX_CONTINUATIONS) throw limitExceeded('Rock Ridge continuation areas chain too long');
    area = await source.read(continuation.position, continuation.length, 'a Rock Ridge continuation area');
  }
  const joined = Buffer.concat(nameParts);
  if (joined.length > IMAGE_LIMITS.maxNameBytes) throw limitExceeded('a Rock Ridge name is too long');
  if (nameParts.length > 0) info.name = joined.toString('utf8');
  return info;
}

function plainName(raw: Buffer, naming: Naming): string {
  const decoded = naming === 'joliet' ? decodeUcs2(raw) : raw.toString('latin1');
  // "NAME.EXT;1": the version goes, and a name without extension loses its lone dot.
  return decoded.replace(/;\d+$/u, '').replace(/\.$/u, '');
}

async function parseDirectory(source: ImageSource, data: Buffer, blockSize: number, naming: Naming, skip: number): Promise<ImageNode[]> {
  const nodes: ImageNode[] = [];
  const seen = new Set<string>();
  let pending: { node: ImageNode; raw: Buffer } | null = null;
  let at = 0;
  const finish = (): void => {
    if (pending === null) return;
    if (!seen.has(pending.node.name)) {
      seen.add(pending.node.name);
      nodes.push(checkExtents(source, pending.node));
    }
    pending = null;
  };
  while (at < data.length) {
    const length = data[at] ?? 0;
    if (length === 0) {
      // Records never straddle a block: the rest of this one is padding.
      at = (Math.floor(at / blockSize) + 1) * blockSize;
      continue;
    }
    if (at + length > data.length || Math.floor(at / blockSize) !== Math.floor((at + length - 1) / blockSize)) {
      throw corrupt('a directory record runs past its block', { offset: at });
    }
    const record = parseRecord(data, at);
    at += length;
    if (record.name.length === 1 && (record.name[0] === 0 || record.name[0] === 1)) continue;
    if (nodes.length + (pending === null ? 0 : 1) >= IMAGE_LIMITS.maxEntriesPerDirectory) {
      throw limitExceeded(`a folder holds more than ${IMAGE_LIMITS.maxEntriesPerDirectory} entries`);
    }

    const open: { node: ImageNode; raw: Buffer } | null = pending;
    if (open?.raw.equals(record.name)) {
      open.node.extents.push({ kind: 'data', position: record.extent * blockSize, length: record.dataLength });
      open.node.size += record.dataLength;
      if (open.node.extents.length > IMAGE_LIMITS.maxExtentsPerFile) throw limitExceeded('a file has too many extents');
      if ((record.flags & FLAG_MULTI_EXTENT) === 0) finish();
      continue;
    }
    finish();
    if ((record.flags & FLAG_ASSOCIATED) !== 0 || record.interleaved) continue;

    let name = plainName(record.name, naming);
    let isDirectory = (record.flags & FLAG_DIRECTORY) !== 0;
    let extent = record.extent;
    let dataLength = record.dataLength;
    if (naming === 'rockridge') {
      const info = await rockRidgeInfo(source, record.systemUse, skip, blockSize);
      if (info.relocated) continue;
      if (info.name !== null) name = info.name;
      // Symbolic links, devices and sockets have no bytes to offer.
      if (info.mode !== null && (info.mode & S_IFMT) !== S_IFDIR && (info.mode & S_IFMT) !== S_IFREG && info.childLink === null) continue;
      if (info.childLink !== null) {
        const moved = await source.read(info.childLink * blockSize, Math.min(blockSize, source.size - info.childLink * blockSize), 'a relocated folder');
        const self = parseRecord(moved, 0);
        isDirectory = true;
        extent = self.extent;
        dataLength = self.dataLength;
      }
    }
    if (!isSafeName(name)) continue;
    const position = extent * blockSize;
    const node: ImageNode = {
      name,
      kind: isDirectory ? 'directory' : 'file',
      size: dataLength,
      mtime: recordingTime(record.recordedAt),
      extents: [{ kind: 'data', position, length: dataLength } satisfies ImageExtent],
      key: `iso:${extent}`,
    };
    pending = { node, raw: record.name };
    if (isDirectory || (record.flags & FLAG_MULTI_EXTENT) === 0) finish();
  }
  finish();
  return nodes;
}
