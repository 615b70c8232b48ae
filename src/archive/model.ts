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

/**
 * What a user says about an image. Tags are normalised (see normaliseTag); categoryId names an entry
 * of the admin-managed category list; customFields are free key/value pairs.
 */
export interface ArchiveMetadata {
  label: string;
  tags: string[];
  notes: string;
  categoryId: string | null;
  /** 1 to 5, or null when unrated. */
  rating: number | null;
  customFields: Record<string, string>;
}

/**
 * What the archive page's badge says: the stored status refined by what is known. An image whose only
 * fault is zero-filled unreadable sectors was completed with errors; one whose verification failed is
 * damaged; one never verified after imaging is unverified.
 */
export const ARCHIVE_CONDITIONS = ['ok', 'completed_with_errors', 'damaged', 'missing', 'unverified'] as const;
export type ArchiveCondition = (typeof ARCHIVE_CONDITIONS)[number];

export function archiveCondition(record: Pick<ArchiveRecord, 'status' | 'badBytes' | 'lastVerifiedAt' | 'lastVerifiedOk'>): ArchiveCondition {
  if (record.status === 'missing') return 'missing';
  if (record.status === 'damaged') return record.badBytes > 0 && record.lastVerifiedOk !== false ? 'completed_with_errors' : 'damaged';
  return record.lastVerifiedAt === null ? 'unverified' : 'ok';
}

/** Tags compare case-insensitively and ignore spacing: `  Road   Trip ` and `road trip` are one tag. */
export function normaliseTag(tag: string): string {
  return tag.normalize('NFC').trim().replace(/\s+/gu, ' ').toLowerCase();
}

export const CUSTOM_FIELD_LIMITS = { count: 20, keyLength: 40, valueLength: 500 } as const;
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/u;

/**
 * Free key/value pairs, trimmed; null when they break a limit (too many, an empty or long key, a
 * long value, control characters), so every way in (API, form, import) refuses the same things.
 */
export function cleanCustomFields(fields: Readonly<Record<string, string>>): Record<string, string> | null {
  const entries = Object.entries(fields).map(([key, value]) => [key.trim(), value.trim()] as const);
  if (entries.length > CUSTOM_FIELD_LIMITS.count) return null;
  for (const [key, value] of entries) {
    if (key === '' || [...key].length > CUSTOM_FIELD_LIMITS.keyLength || [...value].length > CUSTOM_FIELD_LIMITS.valueLength) return null;
    if (CONTROL_CHARS.test(key) || CONTROL_CHARS.test(value)) return null;
  }
  if (new Set(entries.map(([key]) => key)).size !== entries.length) return null;
  return Object.fromEntries(entries);
}

/** An entry of the admin-managed list of categories an image can be put in. */
export interface ArchiveCategory {
  id: string;
  name: string;
  createdAt: string;
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
  /** The cluster node whose output folder holds the image (archives.node_id); null on the embedded database. */
  nodeId: string | null;
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
