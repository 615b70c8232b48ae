/** What kind of source a drive is; decides how it is discovered, probed and ejected. */
type DriveKind = 'optical' | 'block' | 'file' | 'demo';

export interface Drive {
  /**
   * Stable id used everywhere outside this module (`sr0`, `loop3`, `file-<hash>`, `demo`); in the
   * cluster mode the node's name comes first (`tower-a.sr0`), so every drive of the cluster has its own.
   */
  id: string;
  /** The cluster node that owns the drive; absent in the embedded mode. */
  node?: string;
  /** Device node or image file path. Never taken from a request: requests name the id. */
  path: string;
  kind: DriveKind;
  vendor: string | null;
  model: string | null;
  revision: string | null;
  /**
   * Media the drive reads (`cd`, `dvd`, `bd`, `mrw`) and writes (`write-cd-r`, `write-dvd+rw`,
   * `write-bd-re`, …), from /proc/sys/dev/cdrom/info and udev's cdrom_id; empty for other kinds.
   */
  capabilities: string[];
  ejectable: boolean;
  /** Human description, e.g. "ASUS DRW-24B1ST" or "Demo disc (image file, not a real drive)". */
  description: string;
  /** The file behind a loop device, when the kernel names one. */
  backingFile?: string;
}

export const FILE_SYSTEM_KINDS = ['iso9660', 'joliet', 'rockridge', 'udf'] as const;
export type FileSystemKind = (typeof FILE_SYSTEM_KINDS)[number];
export const DISC_KINDS = ['data', 'dvd-video', 'bd-video', 'audio', 'blank', 'unknown'] as const;
export type DiscKind = (typeof DISC_KINDS)[number];
export const MEDIA_TYPES = ['cd', 'dvd', 'bd'] as const;
export type MediaType = (typeof MEDIA_TYPES)[number];

export interface MediaInfo {
  present: boolean;
  /** Size the device reports, in bytes (often wrong for optical media). */
  deviceSizeBytes: number | null;
  /** Size of the image to make: from the volume descriptors, else the device size. */
  imageSizeBytes: number | null;
  /** Where imageSizeBytes came from. */
  sizeSource: 'iso9660' | 'udf' | 'device' | null;
  logicalSectorSize: number;
  fileSystems: FileSystemKind[];
  /** Best human label: Joliet/UDF volume identifier, else the ISO 9660 one. */
  volumeLabel: string | null;
  /** ISO 9660 primary volume identifier, as on disc. */
  volumeId: string | null;
  /** Volume creation time (ISO 8601 UTC) when the descriptors record one. */
  createdAt: string | null;
  kind: DiscKind;
  mediaType: MediaType | null;
  /**
   * For an image file: its inode, size and modification time, so that its content replaced under
   * the same volume descriptors still counts as another disc (src/drives/watch.ts). Absent otherwise.
   */
  sourceStamp?: string;
}
