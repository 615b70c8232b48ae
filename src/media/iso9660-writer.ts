import { createCipheriv, createHash } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { ValidationError } from '../errors.js';

/**
 * Writes the demo disc: a small, valid ISO 9660 image a new user can image without owning a
 * drive. The output is byte-for-byte the same on every run (fixed dates, seeded data), so the
 * checksums of an image made from it can be compared across machines.
 */
export interface DemoIsoOptions {
  /** Total image size in MiB (whole MiB, 1-4095). Default 64. */
  sizeMiB?: number;
  /** Volume identifier: ISO 9660 d-characters (A-Z, 0-9, _), at most 32. Default DISK2ISO_DEMO. */
  label?: string;
}

export interface DemoIso {
  path: string;
  sizeBytes: number;
}

const SECTOR = 2048;
const MiB = 1024 * 1024;
const PVD_SECTOR = 16;
const TERMINATOR_SECTOR = 17;
const L_PATH_TABLE_SECTOR = 18;
const M_PATH_TABLE_SECTOR = 19;
const ROOT_SECTOR = 20;
const README_SECTOR = 21;
const DATA_SECTOR = 22;
const PATH_TABLE_BYTES = 10;
/** One file extent holds at most 4 GiB - 1 bytes; the data file must fit in one. */
const MAX_SIZE_MIB = 4095;
/** 2024-01-01T00:00:00Z, for every date on the disc. */
const DISC_DATE = { year: 2024, month: 1, day: 1 };
const WRITE_CHUNK = MiB;

const DEFAULT_DEMO_LABEL = 'DISK2ISO_DEMO';
const DEFAULT_DEMO_SIZE_MIB = 64;

export async function writeDemoIso(path: string, options: DemoIsoOptions = {}): Promise<DemoIso> {
  const sizeMiB = options.sizeMiB ?? DEFAULT_DEMO_SIZE_MIB;
  const label = options.label ?? DEFAULT_DEMO_LABEL;
  if (!Number.isInteger(sizeMiB) || sizeMiB < 1 || sizeMiB > MAX_SIZE_MIB) {
    throw new ValidationError('validation_failed', `demo disc size must be a whole number of MiB from 1 to ${MAX_SIZE_MIB}, got ${sizeMiB}`, { sizeMiB });
  }
  if (!/^[A-Z0-9_]{1,32}$/.test(label)) {
    throw new ValidationError('validation_failed', `demo disc label must be 1-32 characters A-Z, 0-9 or _, got "${label}"`, { label });
  }

  const totalSectors = (sizeMiB * MiB) / SECTOR;
  const dataBytes = (totalSectors - DATA_SECTOR) * SECTOR;
  const readme = Buffer.from(readmeText(label, sizeMiB), 'latin1');

  const head = Buffer.alloc(DATA_SECTOR * SECTOR);
  primaryVolumeDescriptor(label, totalSectors).copy(head, PVD_SECTOR * SECTOR);
  terminator().copy(head, TERMINATOR_SECTOR * SECTOR);
  pathTable('little').copy(head, L_PATH_TABLE_SECTOR * SECTOR);
  pathTable('big').copy(head, M_PATH_TABLE_SECTOR * SECTOR);
  rootDirectory([
    { name: 'README.TXT;1', sector: README_SECTOR, length: readme.length },
    { name: 'RANDOM.BIN;1', sector: DATA_SECTOR, length: dataBytes },
  ]).copy(head, ROOT_SECTOR * SECTOR);
  readme.copy(head, README_SECTOR * SECTOR);

  await mkdir(dirname(path), { recursive: true });
  // Written beside the target and renamed, so a crash never leaves a half demo disc behind.
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  const handle = await open(temporary, 'w');
  try {
    await handle.write(head, 0, head.length, 0);
    const random = dataStream();
    for (let written = 0; written < dataBytes; written += WRITE_CHUNK) {
      const chunk = random(Math.min(WRITE_CHUNK, dataBytes - written));
      await handle.write(chunk, 0, chunk.length, head.length + written);
    }
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
  return { path, sizeBytes: totalSectors * SECTOR };
}

function readmeText(label: string, sizeMiB: number): string {
  return [
    'disk2iso demo disc',
    '==================',
    '',
    `This ${sizeMiB} MiB ISO 9660 image (volume ${label}) is the disk2iso demo disc.`,
    'disk2iso wrote it itself so that you can try imaging without an optical drive:',
    'the "demo" drive reads this image file as if it were a disc in a drive.',
    '',
    'RANDOM.BIN holds pseudo-random data that gives the disc its size. It is the',
    'same on every machine, so the checksums of a demo image can be compared.',
    '',
    'Nothing on this disc is worth archiving; it only shows how disk2iso works.',
    '',
  ].join('\r\n');
}

/** AES-128-CTR keystream under a fixed key: deterministic, incompressible, and fast. */
function dataStream(): (length: number) => Buffer {
  const key = createHash('sha256').update('disk2iso demo disc data').digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (length) => cipher.update(Buffer.alloc(length));
}

function primaryVolumeDescriptor(label: string, totalSectors: number): Buffer {
  const pvd = Buffer.alloc(SECTOR);
  pvd[0] = 1;
  pvd.write('CD001', 1, 'latin1');
  pvd[6] = 1;
  writePadded(pvd, 8, 32, 'DISK2ISO');
  writePadded(pvd, 40, 32, label);
  writeBothEndian32(pvd, 80, totalSectors);
  writeBothEndian16(pvd, 120, 1);
  writeBothEndian16(pvd, 124, 1);
  writeBothEndian16(pvd, 128, SECTOR);
  writeBothEndian32(pvd, 132, PATH_TABLE_BYTES);
  pvd.writeUInt32LE(L_PATH_TABLE_SECTOR, 140);
  pvd.writeUInt32BE(M_PATH_TABLE_SECTOR, 148);
  directoryRecord(Buffer.from([0]), ROOT_SECTOR, SECTOR, true).copy(pvd, 156);
  writePadded(pvd, 190, 128, label);
  writePadded(pvd, 318, 128, 'DISK2ISO');
  writePadded(pvd, 446, 128, '');
  writePadded(pvd, 574, 128, 'DISK2ISO DEMO DISC');
  writePadded(pvd, 702, 37, '');
  writePadded(pvd, 739, 37, '');
  writePadded(pvd, 776, 37, '');
  const date = `${DISC_DATE.year}${pad2(DISC_DATE.month)}${pad2(DISC_DATE.day)}00000000`;
  for (const [offset, value] of [
    [813, date],
    [830, date],
    [847, '0'.repeat(16)],
    [864, '0'.repeat(16)],
  ] as const) {
    pvd.write(value, offset, 'latin1');
    pvd[offset + 16] = 0;
  }
  pvd[881] = 1;
  return pvd;
}

function terminator(): Buffer {
  const descriptor = Buffer.alloc(SECTOR);
  descriptor[0] = 255;
  descriptor.write('CD001', 1, 'latin1');
  descriptor[6] = 1;
  return descriptor;
}

/** The only directory is the root, entry 1, its own parent. */
function pathTable(endianness: 'little' | 'big'): Buffer {
  const table = Buffer.alloc(PATH_TABLE_BYTES);
  table[0] = 1;
  if (endianness === 'little') {
    table.writeUInt32LE(ROOT_SECTOR, 2);
    table.writeUInt16LE(1, 6);
  } else {
    table.writeUInt32BE(ROOT_SECTOR, 2);
    table.writeUInt16BE(1, 6);
  }
  return table;
}

function rootDirectory(files: Array<{ name: string; sector: number; length: number }>): Buffer {
  const records = [
    directoryRecord(Buffer.from([0]), ROOT_SECTOR, SECTOR, true),
    directoryRecord(Buffer.from([1]), ROOT_SECTOR, SECTOR, true),
    ...files.map((file) => directoryRecord(Buffer.from(file.name, 'latin1'), file.sector, file.length, false)),
  ];
  const block = Buffer.alloc(SECTOR);
  Buffer.concat(records).copy(block);
  return block;
}

function directoryRecord(name: Buffer, extent: number, dataLength: number, isDirectory: boolean): Buffer {
  const length = 33 + name.length + (name.length % 2 === 0 ? 1 : 0);
  const record = Buffer.alloc(length);
  record[0] = length;
  writeBothEndian32(record, 2, extent);
  writeBothEndian32(record, 10, dataLength);
  record[18] = DISC_DATE.year - 1900;
  record[19] = DISC_DATE.month;
  record[20] = DISC_DATE.day;
  record[25] = isDirectory ? 0x02 : 0x00;
  writeBothEndian16(record, 28, 1);
  record[32] = name.length;
  name.copy(record, 33);
  return record;
}

function writePadded(target: Buffer, offset: number, width: number, text: string): void {
  target.fill(0x20, offset, offset + width);
  target.write(text, offset, width, 'latin1');
}

function writeBothEndian16(target: Buffer, offset: number, value: number): void {
  target.writeUInt16LE(value, offset);
  target.writeUInt16BE(value, offset + 2);
}

function writeBothEndian32(target: Buffer, offset: number, value: number): void {
  target.writeUInt32LE(value, offset);
  target.writeUInt32BE(value, offset + 4);
}

function pad2(value: number): string {
  return String(value).padStart(2, '0');
}
