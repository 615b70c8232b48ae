import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { type UdevReader, parseUdevProperties } from '../../src/drives/udev.js';

/** test/fixtures/sysfs: a /sys tree with two optical drives, a loop device and a partitioned disk. */
export const SYSFS_FIXTURE = fileURLToPath(new URL('../../../test/fixtures/sysfs', import.meta.url));
export const CDROM_INFO_FIXTURE = `${SYSFS_FIXTURE}/proc/sys/dev/cdrom/info`;

/** Output of `udevadm info --query=property --name=/dev/srN` for the drive states tests need. */
export type UdevRecording = 'sr0-dvd-data' | 'sr0-audio-cd' | 'sr1-blank-bd-r' | 'sr1-no-media';

export async function readUdevRecording(recording: UdevRecording): Promise<string> {
  return readFile(`${SYSFS_FIXTURE}/udevadm/${recording}.txt`, 'utf8');
}

/**
 * Mock of the SCSI/udev layer: no optical drive exists on a test machine, so udev's view of one
 * is replayed from recorded udevadm output, keyed by device path. Unknown devices get null, as
 * the real reader gives when udevadm does not know a device.
 */
export function mockUdevLayer(recordings: Record<string, UdevRecording>): UdevReader & { calls: string[] } {
  const calls: string[] = [];
  const reader = async (devicePath: string): Promise<Record<string, string> | null> => {
    calls.push(devicePath);
    const recording = recordings[devicePath];
    return recording === undefined ? null : parseUdevProperties(await readUdevRecording(recording));
  };
  return Object.assign(reader, { calls });
}
