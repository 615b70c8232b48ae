import { basename } from 'node:path';
import type { HashAlgorithm } from '../config/schema.js';
import { writeFileAtomic } from './atomic-file.js';
import type { Digests } from './hasher.js';
import type { BadSectorSummary, ImagingOptions, ImagingSource, ReadSummary } from './types.js';
import type { VerifyReport } from './verify.js';

const RECORD_VERSION = 1;

/** `<hex>  NAME.iso` files, one per algorithm, so `md5sum -c NAME.iso.md5` works in the image's folder. */
export async function writeChecksumSidecars(imagePath: string, algorithms: readonly HashAlgorithm[], checksums: Digests): Promise<void> {
  for (const algorithm of algorithms) {
    const hex = checksums[algorithm];
    if (hex === undefined) throw new Error(`no ${algorithm} checksum to write`);
    await writeFileAtomic(`${imagePath}.${algorithm}`, `${hex}  ${basename(imagePath)}\n`);
  }
}

type VerificationRecord = { verifiedAt: Date; report: VerifyReport } | { verifiedAt: Date; error: string };

/** Everything NAME.iso.json records about how an image was made. */
export interface ImageRecord {
  imagePath: string;
  mapPath: string;
  source: ImagingSource;
  /** True when the source was read through the page cache. */
  buffered: boolean;
  metadata: Record<string, unknown>;
  options: ImagingOptions;
  checksums: Digests;
  badSectors: BadSectorSummary;
  readErrors: number;
  /** The reads of the source this run made. */
  reads: ReadSummary;
  resumed: boolean;
  startedAt: Date;
  finishedAt: Date;
  copySeconds: number;
  hashSeconds: number;
  verifySeconds: number;
  /** null when verification is off or has not run yet. */
  verification: VerificationRecord | null;
}

function verificationJson(verification: VerificationRecord | null): Record<string, unknown> | null {
  if (verification === null) return null;
  const verifiedAt = verification.verifiedAt.toISOString();
  if ('error' in verification) return { ok: false, verified_at: verifiedAt, error: verification.error };
  const { report } = verification;
  return { ok: report.ok, verified_at: verifiedAt, bytes: report.bytes, seconds: report.seconds, results: report.results };
}

/** NAME.iso.json, in the API's snake_case. */
export async function writeImageRecord(record: ImageRecord): Promise<void> {
  const { options, source, badSectors } = record;
  const json = {
    version: RECORD_VERSION,
    image: { file: basename(record.imagePath), size_bytes: source.sizeBytes, sector_size: source.sectorSize },
    source: { path: source.path, size_bytes: source.sizeBytes, sector_size: source.sectorSize, direct_io: !record.buffered },
    metadata: record.metadata,
    options: {
      read_attempts: options.readAttempts,
      checksums: options.checksums,
      verify: options.verify,
      cluster_sectors: options.clusterSectors,
      direct_io: options.directIo,
      map_save_interval_ms: options.mapSaveIntervalMs,
      stop_threshold_percent: options.stopThresholdPercent,
      keep_partial_on_cancel: options.keepPartialOnCancel,
    },
    checksums: record.checksums,
    bad_sectors: {
      bad_bytes: badSectors.badBytes,
      bad_areas: badSectors.badAreas,
      areas: badSectors.areas,
      read_errors: record.readErrors,
      map_file: basename(record.mapPath),
    },
    reads: { calls: record.reads.calls, bytes: record.reads.bytes, failed: record.reads.failed, probes: record.reads.probes },
    timings: {
      started_at: record.startedAt.toISOString(),
      finished_at: record.finishedAt.toISOString(),
      copy_seconds: record.copySeconds,
      hash_seconds: record.hashSeconds,
      verify_seconds: record.verifySeconds,
    },
    resumed: record.resumed,
    verification: verificationJson(record.verification),
  };
  await writeFileAtomic(`${record.imagePath}.json`, `${JSON.stringify(json, null, 2)}\n`);
}
