import { writeFile } from 'node:fs/promises';

/**
 * Builds small UDF images byte by byte, for what mkudffs cannot make here: directories in the root
 * (the kernel has no UDF driver to mount and fill an mkudffs image) and UDF 2.50 metadata
 * partitions (Blu-ray's layout; mkudffs makes 2.50 only with a VAT for BD-R). Tests check the
 * output with udftools' udfinfo, an independent reader, before trusting it.
 *
 * Layout (2048-byte blocks): VRS at 16-18, main VDS at 32, reserve VDS at 48, integrity at 64,
 * anchors at 256, N-257 and N-1, one partition from 257 up to the second anchor.
 */
export type RootAllocation = 'inline' | 'short' | 'long' | 'continued' | 'looped';

export interface UdfBuildOptions {
  path: string;
  /** Volume size in blocks; default 1024 (2 MiB). */
  blocks?: number;
  /** Logical volume identifier (the label desktops show). */
  label?: string;
  /** Primary volume identifier. */
  volumeId?: string;
  /** 2.01 (type 1 partition map, File Entries) or 2.50 (metadata partition, Extended File Entries). */
  revision?: '2.01' | '2.50';
  /** Directories to create in the root. */
  rootDirectories?: string[];
  /**
   * How the root directory's data is allocated: in the ICB, by a short or long allocation
   * descriptor, through an allocation extent descriptor, or through one that points to itself.
   */
  rootAllocation?: RootAllocation;
  /** Write the anchors at N-257 and N-1; default true. */
  trailingAnchors?: boolean;
  /**
   * Make a UDF bridge disc like DVD-Video: an ISO 9660 primary descriptor (with an empty root
   * directory) and terminator at 16-17, the UDF recognition sequence after them.
   */
  isoBridge?: { volumeId: string; volumeSpaceBlocks: number };
}

const BLOCK = 2048;
const PARTITION_START = 257;
const MAIN_VDS = 32;
const RESERVE_VDS = 48;
const INTEGRITY = 64;
/** 2.50: metadata blocks 0-1 live at partition blocks 40-41, metadata blocks 2-31 at 8-37. */
const METADATA_EXTENTS = [
  { blocks: 2, at: 40 },
  { blocks: 30, at: 8 },
] as const;
const METADATA_BLOCKS = 32;

const LBN = { fileSet: 0, fileSetTerminator: 1, root: 2, rootData: 3, extent: 4, firstChild: 5 } as const;

export async function buildUdfImage(options: UdfBuildOptions): Promise<{ path: string; sizeBytes: number }> {
  const blocks = options.blocks ?? 1024;
  const revision = options.revision === '2.50' ? 0x0250 : 0x0201;
  const metadata = revision === 0x0250;
  const label = options.label ?? 'TESTUDF';
  const volumeId = options.volumeId ?? label;
  const children = options.rootDirectories ?? [];
  const allocation = options.rootAllocation ?? 'inline';
  const partitionLength = blocks - 257 - PARTITION_START;
  if (partitionLength < 64) throw new Error(`a UDF test image needs more than ${PARTITION_START + 257 + 64} blocks`);

  const image = Buffer.alloc(blocks * BLOCK);
  const at = (block: number): Buffer => image.subarray(block * BLOCK, (block + 1) * BLOCK);
  /** Absolute block of a logical block in the partition that holds the file system. */
  const fileSystemBlock = (lbn: number): number => {
    if (!metadata) return PARTITION_START + lbn;
    let first = 0;
    for (const extent of METADATA_EXTENTS) {
      if (lbn < first + extent.blocks) return PARTITION_START + extent.at + (lbn - first);
      first += extent.blocks;
    }
    throw new Error(`metadata block ${lbn} outside the metadata file`);
  };
  const fileSystemRef = metadata ? 1 : 0;

  const recognitionStart = options.isoBridge ? 18 : 16;
  if (options.isoBridge) isoDescriptors(image, options.isoBridge);
  for (const [index, identifier] of ['BEA01', revision >= 0x0200 ? 'NSR03' : 'NSR02', 'TEA01'].entries()) {
    const descriptor = at(recognitionStart + index);
    descriptor.write(identifier, 1, 'latin1');
    descriptor[6] = 1;
  }

  for (const start of [MAIN_VDS, RESERVE_VDS]) {
    primaryVolume(at(start), start, volumeId);
    implementationUse(at(start + 1), start + 1, label);
    partition(at(start + 2), start + 2, partitionLength, revision);
    logicalVolume(at(start + 3), start + 3, label, revision, metadata);
    tag(at(start + 4), 7, start + 4, 8);
    tag(at(start + 5), 8, start + 5, 496);
  }
  integrity(at(INTEGRITY), INTEGRITY, revision, metadata, children.length, partitionLength);
  tag(at(INTEGRITY + 1), 8, INTEGRITY + 1, 496);

  const anchors = [256, ...(options.trailingAnchors === false ? [] : [blocks - 257, blocks - 1])];
  for (const location of anchors) anchor(at(location), location);

  if (metadata) {
    for (const [index, fileType] of [250, 251].entries()) {
      const entry = at(PARTITION_START + index);
      const descriptors = Buffer.concat(METADATA_EXTENTS.map((extent) => shortAd(extent.blocks * BLOCK, extent.at)));
      fileEntry(entry, index, { extended: true, fileType, informationLength: METADATA_BLOCKS * BLOCK, adType: 0, descriptors, links: 1, uniqueId: 0 });
    }
  }

  fileSet(at(fileSystemBlock(LBN.fileSet)), LBN.fileSet, label, fileSystemRef);
  tag(at(fileSystemBlock(LBN.fileSetTerminator)), 8, LBN.fileSetTerminator, 496);

  const childEntries = children.map((name, index) => ({ name, lbn: LBN.firstChild + index }));
  const rootData = Buffer.concat([
    fileIdentifier({ parent: true, name: '', icbLbn: LBN.root, ref: fileSystemRef, location: allocation === 'inline' ? LBN.root : LBN.rootData }),
    ...childEntries.map((child) =>
      fileIdentifier({ parent: false, name: child.name, icbLbn: child.lbn, ref: fileSystemRef, location: allocation === 'inline' ? LBN.root : LBN.rootData }),
    ),
  ]);
  if (rootData.length > BLOCK - 216) throw new Error('too many root directories for this builder');

  const extended = metadata;
  const rootEntry = at(fileSystemBlock(LBN.root));
  const common = { extended, fileType: 4, informationLength: rootData.length, links: 1 + children.length, uniqueId: 0 };
  switch (allocation) {
    case 'inline':
      fileEntry(rootEntry, LBN.root, { ...common, adType: 3, descriptors: rootData });
      break;
    case 'short':
      rootData.copy(at(fileSystemBlock(LBN.rootData)));
      fileEntry(rootEntry, LBN.root, { ...common, adType: 0, descriptors: shortAd(rootData.length, LBN.rootData) });
      break;
    case 'long':
      rootData.copy(at(fileSystemBlock(LBN.rootData)));
      fileEntry(rootEntry, LBN.root, { ...common, adType: 1, descriptors: longAd(rootData.length, LBN.rootData, fileSystemRef) });
      break;
    case 'continued':
    case 'looped': {
      rootData.copy(at(fileSystemBlock(LBN.rootData)));
      const next = allocation === 'looped' ? shortAd(BLOCK, LBN.extent, 3) : shortAd(rootData.length, LBN.rootData);
      allocationExtent(at(fileSystemBlock(LBN.extent)), LBN.extent, next);
      fileEntry(rootEntry, LBN.root, { ...common, adType: 0, descriptors: shortAd(BLOCK, LBN.extent, 3) });
      break;
    }
  }

  for (const child of childEntries) {
    const data = fileIdentifier({ parent: true, name: '', icbLbn: LBN.root, ref: fileSystemRef, location: child.lbn });
    fileEntry(at(fileSystemBlock(child.lbn)), child.lbn, {
      extended,
      fileType: 4,
      informationLength: data.length,
      adType: 3,
      descriptors: data,
      links: 1,
      uniqueId: 16 + child.lbn,
    });
  }

  await writeFile(options.path, image);
  return { path: options.path, sizeBytes: image.length };
}

/** Fills in tag checksum and CRC; call after the descriptor body is complete. */
function tag(descriptor: Buffer, id: number, location: number, crcLength: number, version = 3): void {
  descriptor.writeUInt16LE(id, 0);
  descriptor.writeUInt16LE(version, 2);
  descriptor.writeUInt16LE(1, 6);
  descriptor.writeUInt16LE(crcLength, 10);
  descriptor.writeUInt32LE(location, 12);
  descriptor.writeUInt16LE(crcItuT(descriptor.subarray(16, 16 + crcLength)), 8);
  let sum = 0;
  for (let index = 0; index < 16; index += 1) if (index !== 4) sum += descriptor[index] ?? 0;
  descriptor[4] = sum & 0xff;
}

function crcItuT(bytes: Buffer): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

function dstring(target: Buffer, offset: number, width: number, text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  target[offset] = 8;
  bytes.copy(target, offset + 1, 0, width - 2);
  target[offset + width - 1] = Math.min(bytes.length, width - 2) + 1;
}

function regid(target: Buffer, offset: number, identifier: string, suffix: number[] = []): void {
  target.write(identifier, offset + 1, 23, 'latin1');
  Buffer.from(suffix).copy(target, offset + 24);
}

function charspec(target: Buffer, offset: number): void {
  target.write('OSTA Compressed Unicode', offset + 1, 'latin1');
}

/** 2024-01-01 12:00 local time at UTC+01:00. */
function timestamp(target: Buffer, offset: number): void {
  target.writeUInt16LE((1 << 12) | 60, offset);
  target.writeInt16LE(2024, offset + 2);
  target[offset + 4] = 1;
  target[offset + 5] = 1;
  target[offset + 6] = 12;
}

function shortAd(length: number, position: number, type = 0): Buffer {
  const ad = Buffer.alloc(8);
  ad.writeUInt32LE(((type << 30) >>> 0) + length, 0);
  ad.writeUInt32LE(position, 4);
  return ad;
}

function longAd(length: number, lbn: number, ref: number): Buffer {
  const ad = Buffer.alloc(16);
  ad.writeUInt32LE(length, 0);
  ad.writeUInt32LE(lbn, 4);
  ad.writeUInt16LE(ref, 8);
  return ad;
}

function primaryVolume(descriptor: Buffer, location: number, volumeId: string): void {
  descriptor.writeUInt32LE(1, 16);
  dstring(descriptor, 24, 32, volumeId);
  descriptor.writeUInt16LE(1, 56);
  descriptor.writeUInt16LE(1, 58);
  descriptor.writeUInt16LE(2, 60);
  descriptor.writeUInt16LE(2, 62);
  descriptor.writeUInt32LE(1, 64);
  descriptor.writeUInt32LE(1, 68);
  dstring(descriptor, 72, 128, `0123456789abcdef${volumeId}`);
  charspec(descriptor, 200);
  charspec(descriptor, 264);
  regid(descriptor, 344, '*disk2iso test');
  timestamp(descriptor, 376);
  regid(descriptor, 388, '*disk2iso test');
  tag(descriptor, 1, location, 490 - 16);
}

function implementationUse(descriptor: Buffer, location: number, label: string): void {
  descriptor.writeUInt32LE(2, 16);
  regid(descriptor, 20, '*UDF LV Info', [0x01, 0x02]);
  charspec(descriptor, 52);
  dstring(descriptor, 116, 128, label);
  regid(descriptor, 352, '*disk2iso test');
  tag(descriptor, 4, location, 512 - 16);
}

function partition(descriptor: Buffer, location: number, length: number, revision: number): void {
  descriptor.writeUInt32LE(3, 16);
  descriptor.writeUInt16LE(1, 20);
  descriptor.writeUInt16LE(0, 22);
  regid(descriptor, 24, revision >= 0x0200 ? '+NSR03' : '+NSR02');
  descriptor.writeUInt32LE(1, 184);
  descriptor.writeUInt32LE(PARTITION_START, 188);
  descriptor.writeUInt32LE(length, 192);
  regid(descriptor, 196, '*disk2iso test');
  tag(descriptor, 5, location, 512 - 16);
}

function logicalVolume(descriptor: Buffer, location: number, label: string, revision: number, metadata: boolean): void {
  descriptor.writeUInt32LE(4, 16);
  charspec(descriptor, 20);
  dstring(descriptor, 84, 128, label);
  descriptor.writeUInt32LE(BLOCK, 212);
  regid(descriptor, 216, '*OSTA UDF Compliant', [revision & 0xff, revision >> 8]);
  longAd(BLOCK, LBN.fileSet, metadata ? 1 : 0).copy(descriptor, 248);
  regid(descriptor, 272, '*disk2iso test');
  descriptor.writeUInt32LE(2 * BLOCK, 432);
  descriptor.writeUInt32LE(INTEGRITY, 436);
  const maps: Buffer[] = [Buffer.from([1, 6, 1, 0, 0, 0])];
  if (metadata) {
    const map = Buffer.alloc(64);
    map[0] = 2;
    map[1] = 64;
    regid(map, 4, '*UDF Metadata Partition', [revision & 0xff, revision >> 8]);
    map.writeUInt16LE(1, 36);
    map.writeUInt16LE(0, 38);
    map.writeUInt32LE(0, 40);
    map.writeUInt32LE(1, 44);
    map.writeUInt32LE(0xffffffff, 48);
    map.writeUInt32LE(32, 52);
    map.writeUInt16LE(32, 56);
    maps.push(map);
  }
  const table = Buffer.concat(maps);
  descriptor.writeUInt32LE(table.length, 264);
  descriptor.writeUInt32LE(maps.length, 268);
  table.copy(descriptor, 440);
  tag(descriptor, 6, location, 440 + table.length - 16);
}

function integrity(descriptor: Buffer, location: number, revision: number, metadata: boolean, directories: number, partitionLength: number): void {
  timestamp(descriptor, 16);
  descriptor.writeUInt32LE(1, 28);
  descriptor.writeBigUInt64LE(BigInt(64), 40);
  const partitions = metadata ? 2 : 1;
  descriptor.writeUInt32LE(partitions, 72);
  descriptor.writeUInt32LE(46, 76);
  let offset = 80;
  for (let index = 0; index < partitions; index += 1, offset += 4) descriptor.writeUInt32LE(0, offset);
  for (let index = 0; index < partitions; index += 1, offset += 4) descriptor.writeUInt32LE(index === 0 ? partitionLength : METADATA_BLOCKS, offset);
  regid(descriptor, offset, '*disk2iso test');
  descriptor.writeUInt32LE(0, offset + 32);
  descriptor.writeUInt32LE(1 + directories, offset + 36);
  descriptor.writeUInt16LE(revision, offset + 40);
  descriptor.writeUInt16LE(revision, offset + 42);
  descriptor.writeUInt16LE(revision, offset + 44);
  tag(descriptor, 9, location, offset + 46 - 16);
}

function anchor(descriptor: Buffer, location: number): void {
  descriptor.writeUInt32LE(16 * BLOCK, 16);
  descriptor.writeUInt32LE(MAIN_VDS, 20);
  descriptor.writeUInt32LE(16 * BLOCK, 24);
  descriptor.writeUInt32LE(RESERVE_VDS, 28);
  tag(descriptor, 2, location, 512 - 16);
}

function fileSet(descriptor: Buffer, location: number, label: string, ref: number): void {
  timestamp(descriptor, 16);
  descriptor.writeUInt16LE(3, 28);
  descriptor.writeUInt16LE(3, 30);
  descriptor.writeUInt32LE(1, 32);
  descriptor.writeUInt32LE(1, 36);
  charspec(descriptor, 48);
  dstring(descriptor, 112, 128, label);
  charspec(descriptor, 240);
  dstring(descriptor, 304, 32, label);
  longAd(BLOCK, LBN.root, ref).copy(descriptor, 400);
  regid(descriptor, 416, '*OSTA UDF Compliant', [0x01, 0x02]);
  tag(descriptor, 256, location, 512 - 16);
}

interface EntryFields {
  extended: boolean;
  fileType: number;
  informationLength: number;
  adType: number;
  descriptors: Buffer;
  links: number;
  uniqueId: number;
}

function fileEntry(descriptor: Buffer, location: number, fields: EntryFields): void {
  descriptor.writeUInt16LE(4, 20);
  descriptor.writeUInt16LE(1, 24);
  descriptor[27] = fields.fileType;
  descriptor.writeUInt16LE(fields.adType, 34);
  descriptor.writeUInt32LE(0x14a5, 44);
  descriptor.writeUInt16LE(fields.links, 48);
  descriptor.writeBigUInt64LE(BigInt(fields.informationLength), 56);
  const recorded = fields.adType === 3 ? 0 : Math.ceil(fields.informationLength / BLOCK);
  let descriptorsAt: number;
  if (fields.extended) {
    descriptor.writeBigUInt64LE(BigInt(fields.informationLength), 64);
    descriptor.writeBigUInt64LE(BigInt(recorded), 72);
    for (const offset of [80, 92, 104, 116]) timestamp(descriptor, offset);
    descriptor.writeUInt32LE(1, 128);
    regid(descriptor, 168, '*disk2iso test');
    descriptor.writeBigUInt64LE(BigInt(fields.uniqueId), 200);
    descriptor.writeUInt32LE(fields.descriptors.length, 212);
    descriptorsAt = 216;
  } else {
    descriptor.writeBigUInt64LE(BigInt(recorded), 64);
    for (const offset of [72, 84, 96]) timestamp(descriptor, offset);
    descriptor.writeUInt32LE(1, 108);
    regid(descriptor, 128, '*disk2iso test');
    descriptor.writeBigUInt64LE(BigInt(fields.uniqueId), 160);
    descriptor.writeUInt32LE(fields.descriptors.length, 172);
    descriptorsAt = 176;
  }
  fields.descriptors.copy(descriptor, descriptorsAt);
  tag(descriptor, fields.extended ? 266 : 261, location, descriptorsAt + fields.descriptors.length - 16);
}

function allocationExtent(descriptor: Buffer, location: number, descriptors: Buffer): void {
  descriptor.writeUInt32LE(descriptors.length, 20);
  descriptors.copy(descriptor, 24);
  tag(descriptor, 258, location, 24 + descriptors.length - 16);
}

function fileIdentifier(fields: { parent: boolean; name: string; icbLbn: number; ref: number; location: number }): Buffer {
  const name = fields.parent ? Buffer.alloc(0) : Buffer.concat([Buffer.from([8]), Buffer.from(fields.name, 'latin1')]);
  const length = (38 + name.length + 3) & ~3;
  const fid = Buffer.alloc(length);
  fid.writeUInt16LE(1, 16);
  fid[18] = fields.parent ? 0x0a : 0x02;
  fid[19] = name.length;
  longAd(BLOCK, fields.icbLbn, fields.ref).copy(fid, 20);
  name.copy(fid, 38);
  tag(fid, 257, fields.location, length - 16);
  return fid;
}

const ISO_ROOT_BLOCK = 24;

function isoDescriptors(image: Buffer, bridge: { volumeId: string; volumeSpaceBlocks: number }): void {
  const pvd = image.subarray(16 * BLOCK, 17 * BLOCK);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd[6] = 1;
  pvd.fill(0x20, 40, 72);
  pvd.write(bridge.volumeId, 40, 32, 'latin1');
  pvd.writeUInt32LE(bridge.volumeSpaceBlocks, 80);
  pvd.writeUInt32BE(bridge.volumeSpaceBlocks, 84);
  pvd.writeUInt16LE(BLOCK, 128);
  pvd.writeUInt16BE(BLOCK, 130);
  isoDirectoryRecord(0).copy(pvd, 156);
  pvd.write('2024010112000000', 813, 'latin1');
  pvd[829] = 4;
  pvd[881] = 1;
  const terminator = image.subarray(17 * BLOCK, 18 * BLOCK);
  terminator[0] = 255;
  terminator.write('CD001', 1, 'latin1');
  terminator[6] = 1;
  const root = image.subarray(ISO_ROOT_BLOCK * BLOCK, (ISO_ROOT_BLOCK + 1) * BLOCK);
  isoDirectoryRecord(0).copy(root, 0);
  isoDirectoryRecord(1).copy(root, 34);
}

function isoDirectoryRecord(name: number): Buffer {
  const record = Buffer.alloc(34);
  record[0] = 34;
  record.writeUInt32LE(ISO_ROOT_BLOCK, 2);
  record.writeUInt32BE(ISO_ROOT_BLOCK, 6);
  record.writeUInt32LE(BLOCK, 10);
  record.writeUInt32BE(BLOCK, 14);
  record[25] = 0x02;
  record.writeUInt16LE(1, 28);
  record.writeUInt16BE(1, 30);
  record[32] = 1;
  record[33] = name;
  return record;
}
