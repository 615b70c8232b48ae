import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { DiscKind, FileSystemKind, MediaInfo, MediaType } from '../drives/types.js';
import { UnavailableError, errnoCode } from '../errors.js';
import { type BlockReader, createBlockReader } from './block-reader.js';
import { type Iso9660Volume, readIso9660 } from './iso9660.js';
import { type UdfVolume, readUdf } from './udf.js';
import { scanVolumeRecognition } from './volume-recognition.js';

/** What udev's cdrom_id found out about the disc in an optical drive. */
export interface UdevMediaFacts {
  /** False when the drive is empty; null when udev did not say (cdrom_id did not run). */
  mediaPresent: boolean | null;
  mediaType: MediaType | null;
  blank: boolean;
  audioTracks: number;
  dataTracks: number;
}

export interface ProbeOptions {
  /** Logical sector size of the device; reads are made in whole sectors of it. Default 2048. */
  sectorSize?: number;
  /** Size the device reports; default: the file size for regular files, unknown for devices. */
  deviceSizeBytes?: number | null;
  udev?: UdevMediaFacts | null;
}

/** Errors from open() that mean "nothing there to read", not "something is wrong". */
const NO_MEDIUM_CODES = new Set(['ENOMEDIUM', 'ENXIO', 'ENOENT', 'ENODEV']);
/** Sectors 0-17 hold the system area and the first volume descriptors of every disc format. */
const LEADING_BYTES = 18 * 2048;

/**
 * Finds out what is on a disc, device or image file by reading its volume descriptors natively.
 * Bad content never throws: the result says what could be recognised. A medium that cannot be
 * opened for a reason other than "no medium" (permissions, a busy exclusive device), or that reads
 * nothing at all where every disc format keeps its descriptors, throws (media_unreadable).
 */
export async function probeMedia(path: string, options: ProbeOptions = {}): Promise<MediaInfo> {
  const sectorSize = isSectorSize(options.sectorSize) ? options.sectorSize : 2048;
  const udev = options.udev ?? null;
  const base = {
    logicalSectorSize: sectorSize,
    mediaType: udev?.mediaType ?? null,
    deviceSizeBytes: options.deviceSizeBytes ?? null,
  };
  if (udev?.mediaPresent === false) return absent(base);

  let handle: FileHandle;
  try {
    // O_NONBLOCK keeps the CD-ROM driver from closing an open tray (its autoclose) when the
    // probe runs while someone is putting a disc in; an empty drive then shows as ENOMEDIUM reads.
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = errnoCode(error);
    if (code !== undefined && NO_MEDIUM_CODES.has(code)) return absent(base);
    if (code === 'EIO') throw unreadableMedium(path);
    throw new UnavailableError('media_unreadable', `cannot open ${path} to read its media (${code ?? 'unknown error'})`, { path, code });
  }
  try {
    const stats = await handle.stat();
    const deviceSizeBytes = options.deviceSizeBytes !== undefined ? options.deviceSizeBytes : stats.isFile() ? stats.size : null;
    const sized = { ...base, deviceSizeBytes };
    // cdrom_id already read the table of contents; reading an audio-only or blank disc as data
    // only produces slow I/O errors.
    if (udev && (udev.blank || (udev.audioTracks > 0 && udev.dataTracks === 0))) {
      return describe(sized, { udev, iso: null, udf: null, leadingBlank: udev.blank });
    }
    const reader = createBlockReader(handle, sectorSize);
    const recognition = await scanVolumeRecognition(reader);
    const iso = await readIso9660(reader, recognition.iso);
    const udfAnnounced = recognition.extendedArea.has('NSR02') || recognition.extendedArea.has('NSR03');
    const udf = udfAnnounced ? await readUdf(reader, { blockSizeHint: sectorSize, deviceSizeBytes }) : null;
    const leading = await leadingArea(reader);
    if (reader.noMedium) return absent(sized);
    if (leading === 'unreadable' && iso === null && udf === null) throw unreadableMedium(path);
    return describe(sized, { udev, iso, udf, leadingBlank: leading === 'blank' });
  } finally {
    await handle.close();
  }
}

/** A disc a job can image: present, neither blank nor an audio CD, of a known size. */
export function canBeImaged(media: MediaInfo): boolean {
  return media.present && media.kind !== 'blank' && media.kind !== 'audio' && media.imageSizeBytes !== null && media.imageSizeBytes > 0;
}

type BaseFacts = Pick<MediaInfo, 'logicalSectorSize' | 'mediaType' | 'deviceSizeBytes'>;

function absent(base: BaseFacts): MediaInfo {
  return {
    ...base,
    present: false,
    imageSizeBytes: null,
    sizeSource: null,
    fileSystems: [],
    volumeLabel: null,
    volumeId: null,
    createdAt: null,
    kind: 'unknown',
  };
}

function describe(base: BaseFacts, found: { udev: UdevMediaFacts | null; iso: Iso9660Volume | null; udf: UdfVolume | null; leadingBlank: boolean }): MediaInfo {
  const { udev, iso, udf } = found;
  const fileSystems: FileSystemKind[] = [];
  if (iso) fileSystems.push('iso9660');
  if (iso?.joliet) fileSystems.push('joliet');
  if (iso?.rockRidge) fileSystems.push('rockridge');
  if (udf) fileSystems.push('udf');

  const size = imageSize(base.deviceSizeBytes, iso, udf, udev?.blank === true);
  const rootNames = new Set([...(iso?.rootNames ?? []), ...(udf?.rootNames ?? [])]);
  let kind: DiscKind;
  if (udev?.blank) kind = 'blank';
  else if (rootNames.has('VIDEO_TS')) kind = 'dvd-video';
  else if (rootNames.has('BDMV')) kind = 'bd-video';
  else if (fileSystems.length > 0) kind = 'data';
  else if (udev && udev.audioTracks > 0 && udev.dataTracks === 0) kind = 'audio';
  else if (found.leadingBlank) kind = 'blank';
  else kind = 'unknown';

  return {
    ...base,
    present: true,
    imageSizeBytes: size.bytes,
    sizeSource: size.source,
    fileSystems,
    volumeLabel: bestLabel(iso, udf),
    volumeId: iso?.volumeId ?? null,
    createdAt: iso?.createdAt ?? udf?.recordedAt ?? null,
    kind,
  };
}

/**
 * Joliet keeps case and Unicode, so it wins, then UDF's logical volume identifier, then the
 * ISO 9660 one. Joliet labels hold only 16 characters: when the Joliet label is just the start
 * of a longer ISO 9660 identifier, mastering software cut it, and the full identifier is better.
 */
function bestLabel(iso: Iso9660Volume | null, udf: UdfVolume | null): string | null {
  const joliet = iso?.joliet?.label ?? null;
  const isoId = iso?.volumeId ?? null;
  if (joliet !== null && isoId !== null && isoId.length > joliet.length && isoId.toUpperCase().startsWith(joliet.toUpperCase())) return isoId;
  return joliet ?? udf?.logicalVolumeId ?? isoId ?? udf?.primaryVolumeId ?? null;
}

/**
 * The volume descriptors decide, because optical drives often report a wrong capacity (the
 * run-out blocks of a DAO disc, a multisession remainder). The device size is only the fallback.
 */
function imageSize(
  deviceSizeBytes: number | null,
  iso: Iso9660Volume | null,
  udf: UdfVolume | null,
  blank: boolean,
): { bytes: number | null; source: MediaInfo['sizeSource'] } {
  const isoBytes = iso?.volumeBytes ?? null;
  const udfBytes = udf?.volumeBytes ?? null;
  if (isoBytes !== null || udfBytes !== null) {
    return (udfBytes ?? 0) > (isoBytes ?? 0) ? { bytes: udfBytes, source: 'udf' } : { bytes: isoBytes, source: 'iso9660' };
  }
  if (blank || deviceSizeBytes === null) return { bytes: null, source: null };
  return { bytes: deviceSizeBytes, source: 'device' };
}

/** What the leading sectors say about a disc whose file systems were not recognised. */
type LeadingArea = 'blank' | 'unreadable' | 'content';

/**
 * Blank: the leading sectors are all zero (or there are none). Unreadable: not one of them can be
 * read. A blank disc also fails every read, but udev's cdrom_id reports blank discs before any
 * read (see probeMedia), so calling a disc that reads nothing blank would tell the user it is
 * empty when it may be a scratched or dirty disc with data on it. Zeros mixed with unreadable
 * sectors are a damaged disc (an ISO's system area is zero, its descriptors follow), which must
 * stay imageable.
 */
async function leadingArea(reader: BlockReader): Promise<LeadingArea> {
  let readable = 0;
  let unreadable = 0;
  for (let offset = 0; offset < LEADING_BYTES; offset += 2048) {
    const bytes = await reader.read(offset, 2048);
    if (bytes === null) unreadable += 1;
    else if (bytes.some((byte) => byte !== 0)) return 'content';
    else if (bytes.length > 0) readable += 1;
  }
  if (unreadable === 0) return 'blank';
  return readable === 0 ? 'unreadable' : 'content';
}

function unreadableMedium(path: string): UnavailableError {
  return new UnavailableError('media_unreadable', `the disc in ${path} cannot be read: none of its first sectors could be read`, { path });
}

/** A logical sector size a device can have: a power of two from 512 bytes to 64 KiB. */
function isSectorSize(value: number | undefined): value is number {
  return value !== undefined && Number.isInteger(value) && value >= 512 && value <= 65536 && (value & (value - 1)) === 0;
}
