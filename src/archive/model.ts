import type { HashAlgorithm } from '../config/schema.js';
import type { DiscKind, FileSystemKind, MediaType } from '../drives/types.js';
import type { JsonObject } from '../json.js';

/** An archived image and what is known about it: the archive's own definition, which the database stores. */

/** damaged: the image has unreadable sectors or failed a verification; missing: its file is gone. */
export const ARCHIVE_STATUSES = ['ok', 'damaged', 'missing'] as const;
export type ArchiveStatus = (typeof ARCHIVE_STATUSES)[number];

/** What started a verification: the check after imaging, a person, the re-verification schedule, a repair, an adoption. */
export const VERIFICATION_ORIGINS = ['imaging', 'manual', 'schedule', 'repair', 'adoption'] as const;
export type VerificationOrigin = (typeof VERIFICATION_ORIGINS)[number];

/** PAR2 recovery data made for an image (in the folder recoveryDirOf names, beside the image): how much it can repair. */
export interface ArchiveRecovery {
  /** Percent of the image's size the recovery blocks add up to. */
  redundancyPercent: number;
  createdAt: string;
  sizeBytes: number;
}

export type ArchiveChecksums = Partial<Record<HashAlgorithm, string>>;

export interface ArchiveMetadata {
  label: string;
  tags: string[];
  notes: string;
}

/** Where an image came from, as the drive and the volume descriptors described it. */
export interface ArchiveSource {
  deviceId: string | null;
  devicePath: string | null;
  discKind: DiscKind | null;
  volumeLabel: string | null;
  volumeId: string | null;
  mediaType: MediaType | null;
  fileSystems: FileSystemKind[];
}

export interface ArchiveRecord {
  id: string;
  jobId: string | null;
  filename: string;
  path: string;
  sizeBytes: number;
  createdAt: string;
  checksums: ArchiveChecksums;
  metadata: ArchiveMetadata;
  source: ArchiveSource;
  discKind: DiscKind | null;
  badBytes: number;
  status: ArchiveStatus;
  lastVerifiedAt: string | null;
  lastVerifiedOk: boolean | null;
  recovery: ArchiveRecovery | null;
}

export interface ArchiveVerificationRecord {
  id: number;
  archiveId: string;
  startedAt: string;
  finishedAt: string;
  ok: boolean;
  /** Per-algorithm outcome and whatever else the verifier reports. */
  results: JsonObject;
  seconds: number;
  requestedBy: string | null;
  origin: VerificationOrigin;
}
