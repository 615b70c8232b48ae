import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';

/**
 * A UDF 2.50 image with a metadata partition, the layout of pressed Blu-ray discs, built byte by
 * byte: mkudffs makes UDF 2.50 only for BD-R, with a virtual partition (VAT) instead. Structures
 * follow ECMA-167 3rd edition (cited as part/section, e.g. 3/10.6) and OSTA UDF 2.60 (cited as
 * "UDF 2.2.10"); every field the readers look at is filled, reserved fields stay zero.
 *
 * Layout in 2048-byte sectors (N = the image's sector count):
 *   16-18        volume recognition sequence: BEA01, NSR03, TEA01 (2/9.1)
 *   32-37, 48-53 main and reserve volume descriptor sequence
 *   64-65        logical volume integrity descriptor and its terminator
 *   256, N-1     anchor volume descriptor pointers (UDF 2.2.3: two of 256, N-257, N-1)
 *   257 to N-2   the one physical partition, whose logical blocks hold:
 *     0, 1         the metadata file's and the metadata mirror file's Extended File Entries
 *     32-95        the metadata file: metadata blocks 32-63 at 32-63, 0-31 at 64-95, so the
 *                  mapping is no identity and a folder can cross from one extent to the next
 *     96-159       the mirror file: a second copy of the 64 metadata blocks (duplicate flag set)
 *     160-         file data
 * The metadata partition (partition reference 1) holds the file set descriptor and every File
 * Entry and folder; files' bytes are in the physical partition (reference 0), reached by long_ads.
 */

export interface Udf250File {
  /** Path inside the image, `/`-separated; folders are made as the paths need them. */
  path: string;
  content: Buffer;
}

export interface Udf250Options {
  path: string;
  /** Logical volume identifier: the label desktops (and the probe) show. */
  label: string;
  files: Udf250File[];
  /** Overrides for hostile images: where the metadata partition map says the (mirror) file's entry is. */
  metadataFileLocation?: number;
  mirrorFileLocation?: number;
  /** Override for a hostile image: the partition number the metadata partition map builds on. */
  metadataPartitionNumber?: number;
}

export interface Udf250Image {
  path: string;
  sizeBytes: number;
  /** Byte offsets of the metadata file's and the mirror file's entries, for tests that damage them. */
  metadataFileEntryOffset: number;
  mirrorFileEntryOffset: number;
  /** Bytes from the image's start to the end of the mirror file: every structure, no file data. */
  structureBytes: number;
}

const BLOCK = 2048;
const MAIN_VDS = 32;
const RESERVE_VDS = 48;
const INTEGRITY = 64;
const ANCHOR = 256;
const PARTITION_START = 257;
/** The revision recorded in the domain identifiers and the integrity descriptor: the first with metadata partitions. */
const REVISION = 0x0250;

/** Physical partition logical blocks, see the layout above. */
const METADATA_FILE_ENTRY = 0;
const MIRROR_FILE_ENTRY = 1;
/** Allocation and alignment unit of the metadata file (UDF 2.2.10): 32 blocks, one BD ECC block pair. */
const METADATA_UNIT = 32;
const METADATA_BLOCKS = 2 * METADATA_UNIT;
const METADATA_EXTENTS = [
  { firstBlock: 0, blocks: METADATA_UNIT, at: 64 },
  { firstBlock: METADATA_UNIT, blocks: METADATA_UNIT, at: 32 },
] as const;
const MIRROR_EXTENT = { blocks: METADATA_BLOCKS, at: 96 };
const DATA_START = 160;

/** Metadata partition logical blocks: the file set descriptor and its terminator (4/8.3), then entries. */
const FILE_SET = 0;
const FILE_SET_TERMINATOR = 1;
const FIRST_ENTRY = 2;
/** Folders longer than one block start here, in the last block of the first extent, so they straddle both. */
const STRADDLE_START = METADATA_UNIT - 1;

const PHYSICAL_REFERENCE = 0;
const METADATA_REFERENCE = 1;

/** An Extended File Entry's fixed part (4/14.17); allocation descriptors or embedded data follow. */
const EXTENDED_ENTRY_HEADER = 216;
/** Files up to this size are embedded in their entry (ICB flags type 3, 4/14.6.8). */
const EMBED_LIMIT = 64;
/** Files larger than this are split into two extents with a gap between, so two long_ads describe them. */
const SPLIT_LIMIT = 64 * 1024;

const TAG = {
  primaryVolume: 1,
  anchor: 2,
  implementationUse: 4,
  partition: 5,
  logicalVolume: 6,
  unallocatedSpace: 7,
  terminating: 8,
  integrity: 9,
  fileSet: 256,
  fileIdentifier: 257,
  extendedFileEntry: 266,
} as const;

/** ICB file types (4/14.6.6; 250 and 251 from UDF 2.2.13). */
const FILE_TYPE = { directory: 4, file: 5, metadata: 250, mirror: 251 } as const;
/** ICB tag flags, bits 0-2 (4/14.6.8). */
const AD_TYPE = { short: 0, long: 1, embedded: 3 } as const;

interface FileNode {
  kind: 'file';
  name: string;
  content: Buffer;
  entry: number;
  uniqueId: number;
  /** Extents of the content in the physical partition. */
  extents: Array<{ block: number; length: number }>;
}

interface FolderNode {
  kind: 'directory';
  name: string;
  children: Array<FileNode | FolderNode>;
  entry: number;
  uniqueId: number;
  parent: FolderNode | null;
  /** First metadata block of the folder's identifiers when they do not fit in its entry. */
  dataBlock: number | null;
}

export async function buildUdf250Image(options: Udf250Options): Promise<Udf250Image> {
  const root = folderTree(options.files);
  const folders = walkFolders(root);
  const files = folders.flatMap((folder) => folder.children.filter((child): child is FileNode => child.kind === 'file'));

  const allocated = new Set<number>([FILE_SET, FILE_SET_TERMINATOR]);
  const claim = (block: number): number => {
    if (block >= METADATA_BLOCKS) throw new Error('the metadata partition of this generator is full');
    allocated.add(block);
    return block;
  };
  let straddle = STRADDLE_START;
  for (const folder of folders) {
    const length = identifiersLength(folder);
    if (length <= BLOCK - EXTENDED_ENTRY_HEADER) continue;
    folder.dataBlock = straddle;
    for (let index = 0; index < Math.ceil(length / BLOCK); index += 1) claim(straddle + index);
    straddle += Math.ceil(length / BLOCK);
  }
  let nextEntry = FIRST_ENTRY;
  // UDF 3.2.1.1: unique ID 0 is the root's, 1-15 are reserved; files and folders count from 16.
  let nextUniqueId = 16;
  for (const node of [...folders, ...files]) {
    while (allocated.has(nextEntry)) nextEntry += 1;
    node.entry = claim(nextEntry);
    node.uniqueId = node === root ? 0 : nextUniqueId++;
  }

  let nextData = DATA_START;
  for (const file of files) {
    if (file.content.length <= EMBED_LIMIT) continue;
    // Every extent but the last holds whole blocks (4/12); a free block between the two shows the reader follows the second descriptor.
    const firstLength = file.content.length > SPLIT_LIMIT ? Math.floor(file.content.length / 2 / BLOCK) * BLOCK : file.content.length;
    const lengths = firstLength === file.content.length ? [firstLength] : [firstLength, file.content.length - firstLength];
    for (const length of lengths) {
      file.extents.push({ block: nextData, length });
      nextData += Math.ceil(length / BLOCK) + 1;
    }
  }

  const partitionLength = nextData;
  const sectors = PARTITION_START + partitionLength + 1;
  const image = Buffer.alloc(sectors * BLOCK);
  const sector = (index: number): Buffer => image.subarray(index * BLOCK, (index + 1) * BLOCK);
  const physical = (block: number): Buffer => sector(PARTITION_START + block);

  for (const [index, identifier] of ['BEA01', 'NSR03', 'TEA01'].entries()) {
    const descriptor = sector(16 + index);
    descriptor.write(identifier, 1, 'latin1');
    descriptor[6] = 1;
  }

  for (const start of [MAIN_VDS, RESERVE_VDS]) {
    primaryVolume(sector(start), start, options.label);
    implementationUse(sector(start + 1), start + 1, options.label);
    partition(sector(start + 2), start + 2, partitionLength);
    logicalVolume(sector(start + 3), start + 3, options);
    unallocatedSpace(sector(start + 4), start + 4);
    tag(sector(start + 5), TAG.terminating, start + 5, 512 - 16);
  }
  integrity(sector(INTEGRITY), INTEGRITY, { partitionLength, files: files.length, directories: folders.length, nextUniqueId });
  tag(sector(INTEGRITY + 1), TAG.terminating, INTEGRITY + 1, 512 - 16);
  for (const location of [ANCHOR, sectors - 1]) anchor(sector(location), location);

  // The metadata partition is built on its own, then recorded twice: once through the metadata
  // file's two extents, once as the mirror (UDF 2.2.13, duplicate metadata flag set).
  const metadata = Buffer.alloc(METADATA_BLOCKS * BLOCK);
  const metadataBlock = (block: number): Buffer => metadata.subarray(block * BLOCK, (block + 1) * BLOCK);
  fileSet(metadataBlock(FILE_SET), FILE_SET, options.label, root.entry);
  tag(metadataBlock(FILE_SET_TERMINATOR), TAG.terminating, FILE_SET_TERMINATOR, 512 - 16);
  for (const folder of folders) writeFolderEntry(folder, metadataBlock, metadata);
  for (const file of files) writeFileEntry(file, metadataBlock);
  for (const extent of METADATA_EXTENTS) {
    metadata.copy(image, (PARTITION_START + extent.at) * BLOCK, extent.firstBlock * BLOCK, (extent.firstBlock + extent.blocks) * BLOCK);
  }
  metadata.copy(image, (PARTITION_START + MIRROR_EXTENT.at) * BLOCK);

  const metadataExtents = METADATA_EXTENTS.map((extent) => shortAd(extent.blocks * BLOCK, extent.at));
  extendedFileEntry(physical(METADATA_FILE_ENTRY), METADATA_FILE_ENTRY, {
    fileType: FILE_TYPE.metadata,
    adType: AD_TYPE.short,
    informationLength: METADATA_BLOCKS * BLOCK,
    descriptors: Buffer.concat(metadataExtents),
    links: 1,
    uniqueId: 0,
    permissions: 0,
  });
  extendedFileEntry(physical(MIRROR_FILE_ENTRY), MIRROR_FILE_ENTRY, {
    fileType: FILE_TYPE.mirror,
    adType: AD_TYPE.short,
    informationLength: METADATA_BLOCKS * BLOCK,
    descriptors: shortAd(MIRROR_EXTENT.blocks * BLOCK, MIRROR_EXTENT.at),
    links: 1,
    uniqueId: 0,
    permissions: 0,
  });
  for (const file of files) {
    let start = 0;
    for (const extent of file.extents) {
      file.content.copy(image, (PARTITION_START + extent.block) * BLOCK, start, start + extent.length);
      start += extent.length;
    }
  }

  await writeFile(options.path, image);
  return {
    path: options.path,
    sizeBytes: image.length,
    metadataFileEntryOffset: (PARTITION_START + METADATA_FILE_ENTRY) * BLOCK,
    mirrorFileEntryOffset: (PARTITION_START + MIRROR_FILE_ENTRY) * BLOCK,
    structureBytes: (PARTITION_START + DATA_START) * BLOCK,
  };
}

/**
 * The sample the tests use: a nested folder, names in both CS0 compressions (8-bit Latin-1 and
 * 16-bit UCS-2), an empty file, embedded, single-extent and two-extent files, and a folder whose
 * identifiers take two blocks across the metadata file's two extents.
 */
export function udf250SampleFiles(): Udf250File[] {
  return [
    { path: 'hello.txt', content: Buffer.from('hello, udf 2.50\n') },
    { path: 'empty.dat', content: Buffer.alloc(0) },
    { path: 'café.txt', content: Buffer.from('a Latin-1 name, 8-bit CS0\n'.repeat(8)) },
    { path: 'random.bin', content: randomBytes(300 * 1024 + 17) },
    { path: 'Grüße – 日本/Ünïcödé ✓.txt', content: Buffer.from('unicode\n') },
    { path: 'deep/level0/level1/level2/bottom.txt', content: Buffer.from('the bottom\n') },
    ...Array.from({ length: 10 }, (_, index) => ({
      path: `many/${String(index).padStart(2, '0')}-${'long-name-'.repeat(20)}.txt`,
      content: Buffer.from(`entry ${index}\n`),
    })),
  ];
}

function folderTree(files: Udf250File[]): FolderNode {
  const folder = (name: string, parent: FolderNode | null): FolderNode => ({
    kind: 'directory',
    name,
    children: [],
    entry: 0,
    uniqueId: 0,
    parent,
    dataBlock: null,
  });
  const root = folder('', null);
  for (const file of files) {
    const parts = file.path.split('/');
    const name = parts.pop() as string;
    let current = root;
    for (const part of parts) {
      let next = current.children.find((child): child is FolderNode => child.kind === 'directory' && child.name === part);
      if (next === undefined) {
        next = folder(part, current);
        current.children.push(next);
      }
      current = next;
    }
    current.children.push({ kind: 'file', name, content: file.content, entry: 0, uniqueId: 0, extents: [] });
  }
  return root;
}

function walkFolders(folder: FolderNode): FolderNode[] {
  return [folder, ...folder.children.flatMap((child) => (child.kind === 'directory' ? walkFolders(child) : []))];
}

/** A file identifier in OSTA CS0 (UDF 2.1.1): compression 8 when every character fits a byte, else 16 (UCS-2, big-endian). */
function cs0(text: string): Buffer {
  const codes = [...text].map((character) => character.codePointAt(0) ?? 0);
  if (codes.every((code) => code <= 0xff)) return Buffer.from([8, ...codes]);
  if (codes.some((code) => code > 0xffff)) throw new Error(`${text}: CS0 holds no characters beyond the BMP`);
  const bytes = Buffer.alloc(1 + 2 * codes.length);
  bytes[0] = 16;
  for (const [index, code] of codes.entries()) bytes.writeUInt16BE(code, 1 + 2 * index);
  return bytes;
}

/** A File Identifier Descriptor's length (4/14.4): 38 bytes, the identifier, padded to a multiple of 4. */
function identifierSize(name: string | null): number {
  return (38 + (name === null ? 0 : cs0(name).length) + 3) & ~3;
}

function identifiersLength(folder: FolderNode): number {
  return identifierSize(null) + folder.children.reduce((sum, child) => sum + identifierSize(child.name), 0);
}

function writeFolderEntry(folder: FolderNode, metadataBlock: (block: number) => Buffer, metadata: Buffer): void {
  const length = identifiersLength(folder);
  // The tag location of an identifier is the block where it starts (4/7.2); embedded ones are in the entry's block.
  const blockOf = (offset: number): number => (folder.dataBlock === null ? folder.entry : folder.dataBlock + Math.floor(offset / BLOCK));
  const parts: Buffer[] = [];
  let offset = 0;
  const add = (fid: Buffer): void => {
    parts.push(fid);
    offset += fid.length;
  };
  add(
    fileIdentifier({ name: null, directory: true, entry: (folder.parent ?? folder).entry, uniqueId: (folder.parent ?? folder).uniqueId, location: blockOf(0) }),
  );
  for (const child of folder.children) {
    add(fileIdentifier({ name: child.name, directory: child.kind === 'directory', entry: child.entry, uniqueId: child.uniqueId, location: blockOf(offset) }));
  }
  const identifiers = Buffer.concat(parts);
  if (identifiers.length !== length) throw new Error('identifier sizes disagree');
  const subfolders = folder.children.filter((child) => child.kind === 'directory').length;
  const common = {
    fileType: FILE_TYPE.directory,
    informationLength: length,
    // A folder is named by its parent's identifier and by each subfolder's parent identifier (4/14.9).
    links: 1 + subfolders,
    uniqueId: folder.uniqueId,
    permissions: 0x14a5,
  };
  if (folder.dataBlock === null) {
    extendedFileEntry(metadataBlock(folder.entry), folder.entry, { ...common, adType: AD_TYPE.embedded, descriptors: identifiers });
  } else {
    identifiers.copy(metadata, folder.dataBlock * BLOCK);
    // A short_ad addresses the partition of the entry itself (4/14.14.1): the metadata partition.
    extendedFileEntry(metadataBlock(folder.entry), folder.entry, { ...common, adType: AD_TYPE.short, descriptors: shortAd(length, folder.dataBlock) });
  }
}

function writeFileEntry(file: FileNode, metadataBlock: (block: number) => Buffer): void {
  const common = { fileType: FILE_TYPE.file, informationLength: file.content.length, links: 1, uniqueId: file.uniqueId, permissions: 0x1084 };
  if (file.content.length <= EMBED_LIMIT) {
    // An empty file is embedded too: no allocation descriptor at all (4/14.17 L_AD = 0).
    extendedFileEntry(metadataBlock(file.entry), file.entry, { ...common, adType: AD_TYPE.embedded, descriptors: file.content });
    return;
  }
  // The data lies in another partition than the entry, so long_ads name the partition (UDF 2.3.10).
  const descriptors = Buffer.concat(file.extents.map((extent) => longAd(extent.length, extent.block, PHYSICAL_REFERENCE, 0)));
  extendedFileEntry(metadataBlock(file.entry), file.entry, { ...common, adType: AD_TYPE.long, descriptors });
}

/** Descriptor tag (3/7.2): checksum of the tag's bytes and a CRC of `crcLength` bytes after it; fill it in last. */
function tag(descriptor: Buffer, id: number, location: number, crcLength: number): void {
  descriptor.writeUInt16LE(id, 0);
  // Version 3: the descriptors of ECMA-167 3rd edition, which UDF 2.00 and later use (UDF 2.2.1.1).
  descriptor.writeUInt16LE(3, 2);
  descriptor.writeUInt16LE(1, 6);
  descriptor.writeUInt16LE(crcLength, 10);
  descriptor.writeUInt32LE(location, 12);
  descriptor.writeUInt16LE(crc16(descriptor.subarray(16, 16 + crcLength)), 8);
  let sum = 0;
  for (let index = 0; index < 16; index += 1) if (index !== 4) sum += descriptor[index] ?? 0;
  descriptor[4] = sum & 0xff;
}

/** CRC-16 of ITU-T V.41 (x^16 + x^12 + x^5 + 1, initial value 0), as 3/7.2.6 prescribes. */
export function crc16(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** A dstring (1/7.2.12): CS0 bytes, zero padding, and the used length in the field's last byte. */
function dstring(target: Buffer, offset: number, width: number, text: string): void {
  const bytes = cs0(text);
  if (bytes.length > width - 1) throw new Error(`${text} does not fit a dstring of ${width} bytes`);
  bytes.copy(target, offset);
  target[offset + width - 1] = bytes.length;
}

/** An entity identifier (1/7.4): flags, a 23-byte identifier, an 8-byte suffix (UDF 2.1.5.3). */
function regid(target: Buffer, offset: number, identifier: string, suffix: number[] = []): void {
  target.write(identifier, offset + 1, 23, 'latin1');
  Buffer.from(suffix).copy(target, offset + 24);
}

/** The UDF revision as a domain or UDF identifier suffix wants it: a little-endian BCD Uint16. */
const REVISION_SUFFIX = [REVISION & 0xff, REVISION >> 8];

/** UDF 2.1.2: every charspec is CS0 with this text. */
function charspec(target: Buffer, offset: number): void {
  target.write('OSTA Compressed Unicode', offset + 1, 'latin1');
}

/** 2024-01-01 12:00 local time at UTC+01:00 (1/7.3: type 1 = local time, offset in minutes). */
function timestamp(target: Buffer, offset: number): void {
  target.writeUInt16LE((1 << 12) | 60, offset);
  target.writeInt16LE(2024, offset + 2);
  target[offset + 4] = 1;
  target[offset + 5] = 1;
  target[offset + 6] = 12;
}

/** short_ad (4/14.14.1); the top two bits of the length are the extent type, 0 = recorded. */
function shortAd(length: number, block: number): Buffer {
  const ad = Buffer.alloc(8);
  ad.writeUInt32LE(length, 0);
  ad.writeUInt32LE(block, 4);
  return ad;
}

/** long_ad (4/14.14.2); UDF 2.3.10.1 puts the target's unique ID in its implementation use. */
function longAd(length: number, block: number, reference: number, uniqueId: number): Buffer {
  const ad = Buffer.alloc(16);
  ad.writeUInt32LE(length, 0);
  ad.writeUInt32LE(block, 4);
  ad.writeUInt16LE(reference, 8);
  ad.writeUInt32LE(uniqueId, 12);
  return ad;
}

/** Primary Volume Descriptor (3/10.1, UDF 2.2.2). */
function primaryVolume(descriptor: Buffer, location: number, label: string): void {
  descriptor.writeUInt32LE(0, 16);
  dstring(descriptor, 24, 32, label);
  descriptor.writeUInt16LE(1, 56);
  descriptor.writeUInt16LE(1, 58);
  descriptor.writeUInt16LE(2, 60);
  descriptor.writeUInt16LE(3, 62);
  descriptor.writeUInt32LE(1, 64);
  descriptor.writeUInt32LE(1, 68);
  // UDF 2.2.2.5: the volume set identifier starts with 16 unique hex digits.
  dstring(descriptor, 72, 128, `20240101a0b1c2d3${label}`);
  charspec(descriptor, 200);
  charspec(descriptor, 264);
  regid(descriptor, 344, '*disk2iso test');
  timestamp(descriptor, 376);
  regid(descriptor, 388, '*disk2iso test');
  tag(descriptor, TAG.primaryVolume, location, 512 - 16);
}

/** Implementation Use Volume Descriptor with the LV Info of UDF 2.2.7. */
function implementationUse(descriptor: Buffer, location: number, label: string): void {
  descriptor.writeUInt32LE(1, 16);
  regid(descriptor, 20, '*UDF LV Info', REVISION_SUFFIX);
  charspec(descriptor, 52);
  dstring(descriptor, 116, 128, label);
  regid(descriptor, 352, '*disk2iso test');
  tag(descriptor, TAG.implementationUse, location, 512 - 16);
}

/** Partition Descriptor (3/10.5, UDF 2.2.14): partition 0, read-only, as pressed discs are. */
function partition(descriptor: Buffer, location: number, length: number): void {
  descriptor.writeUInt32LE(2, 16);
  descriptor.writeUInt16LE(1, 20);
  descriptor.writeUInt16LE(0, 22);
  regid(descriptor, 24, '+NSR03');
  descriptor.writeUInt32LE(1, 184);
  descriptor.writeUInt32LE(PARTITION_START, 188);
  descriptor.writeUInt32LE(length, 192);
  regid(descriptor, 196, '*disk2iso test');
  tag(descriptor, TAG.partition, location, 512 - 16);
}

/**
 * Logical Volume Descriptor (3/10.6, UDF 2.2.4) with two partition maps: type 1 for partition 0
 * (3/10.7.2) and the type 2 metadata partition map of UDF 2.2.10 on top of it.
 */
function logicalVolume(descriptor: Buffer, location: number, options: Udf250Options): void {
  descriptor.writeUInt32LE(3, 16);
  charspec(descriptor, 20);
  dstring(descriptor, 84, 128, options.label);
  descriptor.writeUInt32LE(BLOCK, 212);
  regid(descriptor, 216, '*OSTA UDF Compliant', REVISION_SUFFIX);
  // Logical volume contents use: where the file set descriptor is (UDF 2.2.4).
  longAd(BLOCK, FILE_SET, METADATA_REFERENCE, 0).copy(descriptor, 248);
  regid(descriptor, 272, '*disk2iso test');
  descriptor.writeUInt32LE(2 * BLOCK, 432);
  descriptor.writeUInt32LE(INTEGRITY, 436);
  const physicalMap = Buffer.from([1, 6, 1, 0, 0, 0]);
  const metadataMap = Buffer.alloc(64);
  metadataMap[0] = 2;
  metadataMap[1] = 64;
  regid(metadataMap, 4, '*UDF Metadata Partition', REVISION_SUFFIX);
  metadataMap.writeUInt16LE(1, 36);
  metadataMap.writeUInt16LE(options.metadataPartitionNumber ?? 0, 38);
  metadataMap.writeUInt32LE(options.metadataFileLocation ?? METADATA_FILE_ENTRY, 40);
  metadataMap.writeUInt32LE(options.mirrorFileLocation ?? MIRROR_FILE_ENTRY, 44);
  // No metadata bitmap on read-only media (UDF 2.2.10: location 0xFFFFFFFF).
  metadataMap.writeUInt32LE(0xffffffff, 48);
  metadataMap.writeUInt32LE(METADATA_UNIT, 52);
  metadataMap.writeUInt16LE(METADATA_UNIT, 56);
  // Duplicate metadata flag: the mirror file has extents of its own.
  metadataMap[58] = 1;
  const table = Buffer.concat([physicalMap, metadataMap]);
  descriptor.writeUInt32LE(table.length, 264);
  descriptor.writeUInt32LE(2, 268);
  table.copy(descriptor, 440);
  tag(descriptor, TAG.logicalVolume, location, 440 + table.length - 16);
}

/** Unallocated Space Descriptor (3/10.8): none, the volume is full. */
function unallocatedSpace(descriptor: Buffer, location: number): void {
  descriptor.writeUInt32LE(4, 16);
  descriptor.writeUInt32LE(0, 20);
  tag(descriptor, TAG.unallocatedSpace, location, 24 - 16);
}

/** Logical Volume Integrity Descriptor (3/10.10, UDF 2.2.6), closed, with one entry per partition map. */
function integrity(descriptor: Buffer, location: number, counts: { partitionLength: number; files: number; directories: number; nextUniqueId: number }): void {
  timestamp(descriptor, 16);
  descriptor.writeUInt32LE(1, 28);
  // Logical volume contents use (UDF 3.2.1): the next unique ID to hand out.
  descriptor.writeBigUInt64LE(BigInt(counts.nextUniqueId), 40);
  descriptor.writeUInt32LE(2, 72);
  descriptor.writeUInt32LE(46, 76);
  descriptor.writeUInt32LE(0, 80);
  descriptor.writeUInt32LE(0, 84);
  descriptor.writeUInt32LE(counts.partitionLength, 88);
  descriptor.writeUInt32LE(METADATA_BLOCKS, 92);
  const use = 96;
  regid(descriptor, use, '*disk2iso test');
  descriptor.writeUInt32LE(counts.files, use + 32);
  descriptor.writeUInt32LE(counts.directories, use + 36);
  for (const offset of [40, 42, 44]) descriptor.writeUInt16LE(REVISION, use + offset);
  tag(descriptor, TAG.integrity, location, use + 46 - 16);
}

/** Anchor Volume Descriptor Pointer (3/10.2): the main and the reserve sequence, 16 sectors each. */
function anchor(descriptor: Buffer, location: number): void {
  descriptor.writeUInt32LE(16 * BLOCK, 16);
  descriptor.writeUInt32LE(MAIN_VDS, 20);
  descriptor.writeUInt32LE(16 * BLOCK, 24);
  descriptor.writeUInt32LE(RESERVE_VDS, 28);
  tag(descriptor, TAG.anchor, location, 512 - 16);
}

/** File Set Descriptor (4/14.1, UDF 2.3.2) in the metadata partition. */
function fileSet(descriptor: Buffer, location: number, label: string, rootEntry: number): void {
  timestamp(descriptor, 16);
  descriptor.writeUInt16LE(3, 28);
  descriptor.writeUInt16LE(3, 30);
  descriptor.writeUInt32LE(1, 32);
  descriptor.writeUInt32LE(1, 36);
  charspec(descriptor, 48);
  dstring(descriptor, 112, 128, label);
  charspec(descriptor, 240);
  dstring(descriptor, 304, 32, label);
  longAd(BLOCK, rootEntry, METADATA_REFERENCE, 0).copy(descriptor, 400);
  regid(descriptor, 416, '*OSTA UDF Compliant', REVISION_SUFFIX);
  tag(descriptor, TAG.fileSet, location, 512 - 16);
}

interface EntryFields {
  fileType: number;
  adType: number;
  informationLength: number;
  /** Allocation descriptors, or the data itself when embedded. */
  descriptors: Buffer;
  links: number;
  uniqueId: number;
  permissions: number;
}

/** Extended File Entry (4/14.17), strategy 4 (one direct entry, 4/14.6.2), no extended attributes. */
function extendedFileEntry(descriptor: Buffer, location: number, fields: EntryFields): void {
  if (EXTENDED_ENTRY_HEADER + fields.descriptors.length > BLOCK) throw new Error('an entry overflows its block');
  descriptor.writeUInt16LE(4, 20);
  descriptor.writeUInt16LE(1, 24);
  descriptor[27] = fields.fileType;
  descriptor.writeUInt16LE(fields.adType, 34);
  // UDF 3.3.3.1: no user or group recorded.
  descriptor.writeUInt32LE(0xffffffff, 36);
  descriptor.writeUInt32LE(0xffffffff, 40);
  descriptor.writeUInt32LE(fields.permissions, 44);
  descriptor.writeUInt16LE(fields.links, 48);
  descriptor.writeBigUInt64LE(BigInt(fields.informationLength), 56);
  descriptor.writeBigUInt64LE(BigInt(fields.informationLength), 64);
  const recorded = fields.adType === AD_TYPE.embedded ? 0 : Math.ceil(fields.informationLength / BLOCK);
  descriptor.writeBigUInt64LE(BigInt(recorded), 72);
  for (const offset of [80, 92, 104, 116]) timestamp(descriptor, offset);
  descriptor.writeUInt32LE(1, 128);
  regid(descriptor, 168, '*disk2iso test');
  descriptor.writeBigUInt64LE(BigInt(fields.uniqueId), 200);
  descriptor.writeUInt32LE(0, 208);
  descriptor.writeUInt32LE(fields.descriptors.length, 212);
  fields.descriptors.copy(descriptor, EXTENDED_ENTRY_HEADER);
  tag(descriptor, TAG.extendedFileEntry, location, EXTENDED_ENTRY_HEADER + fields.descriptors.length - 16);
}

/** File Identifier Descriptor (4/14.4); a nameless one with the parent bit names the parent folder. */
function fileIdentifier(fields: { name: string | null; directory: boolean; entry: number; uniqueId: number; location: number }): Buffer {
  const identifier = fields.name === null ? Buffer.alloc(0) : cs0(fields.name);
  if (identifier.length > 255) throw new Error(`${fields.name}: a file identifier holds at most 255 bytes`);
  const fid = Buffer.alloc(identifierSize(fields.name));
  fid.writeUInt16LE(1, 16);
  fid[18] = (fields.directory ? 0x02 : 0) | (fields.name === null ? 0x08 : 0);
  fid[19] = identifier.length;
  longAd(BLOCK, fields.entry, METADATA_REFERENCE, fields.uniqueId).copy(fid, 20);
  identifier.copy(fid, 38);
  tag(fid, TAG.fileIdentifier, fields.location, fid.length - 16);
  return fid;
}
