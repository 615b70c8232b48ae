import type { BlockReader } from './block-reader.js';

/** ISO 9660 and ECMA-167 both start their descriptors at byte 32768 (sector 16 of 2048 bytes). */
const VOLUME_DESCRIPTOR_START = 16 * 2048;
const DESCRIPTOR_SIZE = 2048;
/** Real discs have a handful; the bound keeps a garbage medium from being read to its end. */
const MAX_DESCRIPTORS = 64;

const ISO_IDENTIFIER = 'CD001';
const EXTENDED_AREA_IDENTIFIERS = new Set(['BEA01', 'NSR02', 'NSR03', 'TEA01', 'BOOT2', 'CDW02']);

export interface IsoVolumeDescriptor {
  type: number;
  version: number;
  bytes: Buffer;
}

export interface VolumeRecognition {
  /** ISO 9660 descriptors in disc order, up to and including the set terminator. */
  iso: IsoVolumeDescriptor[];
  /** ECMA-167 volume structure identifiers seen (BEA01, NSR02, NSR03, TEA01, …). */
  extendedArea: Set<string>;
}

/**
 * Reads the volume recognition area: ISO 9660 volume descriptors and, after them, the ECMA-167
 * extended area that announces UDF. For UDF block sizes above 2048 bytes each structure starts on
 * a block boundary, so empty slots inside an open extended area are stepped over.
 */
export async function scanVolumeRecognition(reader: BlockReader): Promise<VolumeRecognition> {
  const iso: IsoVolumeDescriptor[] = [];
  const extendedArea = new Set<string>();
  let isoTerminated = false;
  let insideExtendedArea = false;

  for (let index = 0; index < MAX_DESCRIPTORS; index += 1) {
    const bytes = await reader.read(VOLUME_DESCRIPTOR_START + index * DESCRIPTOR_SIZE, DESCRIPTOR_SIZE);
    if (bytes === null || bytes.length < DESCRIPTOR_SIZE) break;
    const identifier = bytes.toString('latin1', 1, 6);
    if (identifier === ISO_IDENTIFIER) {
      if (isoTerminated) continue;
      const type = bytes[0] ?? 0;
      iso.push({ type, version: bytes[6] ?? 0, bytes });
      if (type === 255) isoTerminated = true;
      continue;
    }
    if (EXTENDED_AREA_IDENTIFIERS.has(identifier)) {
      extendedArea.add(identifier);
      if (identifier === 'BEA01') insideExtendedArea = true;
      if (identifier === 'TEA01') insideExtendedArea = false;
      continue;
    }
    if (insideExtendedArea && bytes.every((byte) => byte === 0)) continue;
    break;
  }
  return { iso, extendedArea };
}
