import { execFile } from 'node:child_process';
import { errnoCode } from '../errors.js';
import type { UdevMediaFacts } from '../media/probe.js';
import type { MediaType } from './types.js';

/** udev properties of a device (`udevadm info --query=property`), or null when udev cannot say. */
export type UdevReader = (devicePath: string) => Promise<Record<string, string> | null>;

const UDEVADM_TIMEOUT_MS = 10_000;

/**
 * Asks udevadm. A missing udevadm (a minimal container) or a device udev does not know gives
 * null: udev facts only refine what disk2iso reads itself, so their absence is not an error.
 */
export function createUdevadmReader(options: { command?: string } = {}): UdevReader {
  const command = options.command ?? 'udevadm';
  let missing = false;
  return (devicePath) =>
    new Promise((resolve) => {
      if (missing) {
        resolve(null);
        return;
      }
      execFile(command, ['info', '--query=property', `--name=${devicePath}`], { encoding: 'utf8', timeout: UDEVADM_TIMEOUT_MS }, (error, stdout) => {
        if (error) {
          if (errnoCode(error) === 'ENOENT') missing = true;
          resolve(null);
          return;
        }
        resolve(parseUdevProperties(stdout));
      });
    });
}

/** KEY=VALUE lines; `--export` style single quotes around the value are removed. */
export function parseUdevProperties(text: string): Record<string, string> {
  const properties: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Za-z0-9_.]+)=(.*)$/.exec(line.trim());
    if (!match?.[1]) continue;
    const raw = match[2] ?? '';
    properties[match[1]] = raw.length >= 2 && raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  }
  return properties;
}

/**
 * What cdrom_id (udev's optical drive helper) found about the disc. It sets ID_CDROM=1 for every
 * optical drive and the ID_CDROM_MEDIA* keys only while a disc is in it; without ID_CDROM it did
 * not run, and udev knows nothing about the medium.
 */
export function udevMediaFacts(properties: Record<string, string> | null): UdevMediaFacts | null {
  if (!properties || (properties['ID_CDROM'] !== '1' && properties['ID_CDROM_MEDIA'] === undefined)) return null;
  return {
    mediaPresent: properties['ID_CDROM_MEDIA'] === '1',
    mediaType: mediaTypeOf(properties),
    blank: properties['ID_CDROM_MEDIA_STATE'] === 'blank',
    audioTracks: count(properties['ID_CDROM_MEDIA_TRACK_COUNT_AUDIO']),
    dataTracks: count(properties['ID_CDROM_MEDIA_TRACK_COUNT_DATA']),
  };
}

/** ID_CDROM_MEDIA_DVD, ID_CDROM_MEDIA_DVD_PLUS_R, ID_CDROM_MEDIA_BD_RE, …: the profile of the disc. */
function mediaTypeOf(properties: Record<string, string>): MediaType | null {
  for (const type of ['bd', 'dvd', 'cd'] as const) {
    const pattern = new RegExp(`^ID_CDROM_MEDIA_${type.toUpperCase()}(_|$)`);
    if (Object.entries(properties).some(([key, value]) => pattern.test(key) && value === '1')) return type;
  }
  return null;
}

function count(value: string | undefined): number {
  return value !== undefined && /^\d+$/.test(value) ? Number(value) : 0;
}

/** Drive features cdrom_id reports (profiles the drive supports), in the capability vocabulary. */
const DRIVE_CAPABILITIES: Array<[key: string, capability: string]> = [
  ['ID_CDROM_CD', 'cd'],
  ['ID_CDROM_DVD', 'dvd'],
  ['ID_CDROM_BD', 'bd'],
  ['ID_CDROM_MRW', 'mrw'],
  ['ID_CDROM_CD_R', 'write-cd-r'],
  ['ID_CDROM_CD_RW', 'write-cd-rw'],
  ['ID_CDROM_DVD_R', 'write-dvd-r'],
  ['ID_CDROM_DVD_RW', 'write-dvd-rw'],
  ['ID_CDROM_DVD_RAM', 'write-dvd-ram'],
  ['ID_CDROM_DVD_PLUS_R', 'write-dvd+r'],
  ['ID_CDROM_DVD_PLUS_RW', 'write-dvd+rw'],
  ['ID_CDROM_DVD_PLUS_R_DL', 'write-dvd+r-dl'],
  ['ID_CDROM_MRW_W', 'write-mrw'],
  ['ID_CDROM_BD_R', 'write-bd-r'],
  ['ID_CDROM_BD_RE', 'write-bd-re'],
];

export function udevDriveCapabilities(properties: Record<string, string> | null): string[] {
  if (!properties) return [];
  return DRIVE_CAPABILITIES.filter(([key]) => properties[key] === '1').map(([, capability]) => capability);
}

/** udev's ID_VENDOR / ID_MODEL use underscores for spaces. */
export function udevIdentity(properties: Record<string, string> | null): { vendor: string | null; model: string | null } {
  const clean = (value: string | undefined): string | null => {
    const text = value?.replace(/_/g, ' ').trim();
    return text ? text : null;
  };
  return { vendor: clean(properties?.['ID_VENDOR']), model: clean(properties?.['ID_MODEL']) };
}
