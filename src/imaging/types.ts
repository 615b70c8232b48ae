import type { HashAlgorithm } from '../config/schema.js';

/**
 * Every checksum the engine computes, in the order sidecars are looked for. Declared here instead
 * of importing the schema's list, so that loading the engine does not load the schema library
 * (typebox: a quarter of a second at every start of a process that only images); the Record type
 * makes the compiler reject this list as soon as the schema's set of algorithms changes.
 */
const CHECKSUM_SET: Record<HashAlgorithm, true> = { md5: true, sha1: true, sha256: true };
export const CHECKSUM_ALGORITHMS: readonly HashAlgorithm[] = Object.keys(CHECKSUM_SET) as HashAlgorithm[];

export type ImagingPhase = 'preparing' | 'copying' | 'trimming' | 'scraping' | 'retrying' | 'hashing' | 'finalizing' | 'verifying';

/** Why an imaging run was asked to stop early. Passed as the AbortSignal's reason. */
export type StopReason = 'pause' | 'cancel';

export interface ImagingSource {
  /** Device node or image file. */
  path: string;
  /** Bytes to image (from the volume descriptors, else the device size). */
  sizeBytes: number;
  /** Logical sector size; every read and every map entry is aligned to it. */
  sectorSize: number;
}

export interface ImagingOptions {
  readAttempts: number;
  checksums: HashAlgorithm[];
  verify: boolean;
  clusterSectors: number;
  directIo: 'auto' | 'on' | 'off';
  mapSaveIntervalMs: number;
  /** Pause (map saved) when the output file system is fuller than this. */
  stopThresholdPercent: number;
  /** On cancel: keep NAME.iso.part and its map instead of removing them. */
  keepPartialOnCancel: boolean;
}

export interface ImagingProgress {
  phase: ImagingPhase;
  /** Bytes finished ('+') in the rescue map, or bytes hashed/verified in those phases. */
  bytesDone: number;
  bytesTotal: number;
  /** 0..100 */
  percent: number;
  /** Bytes per second over the last few seconds. */
  rateBps: number;
  etaSeconds: number | null;
  badBytes: number;
  errorCount: number;
  /** Current read position (for a live sector map). */
  position: number;
  /** True once the engine had to fall back from O_DIRECT to buffered reads. */
  buffered: boolean;
  /** Reads of the source so far in this run, and the bytes they asked for. */
  readCalls: number;
  readBytes: number;
}

export interface BadSectorSummary {
  badBytes: number;
  badAreas: number;
  /** The bad areas themselves ([pos, size] in bytes), at most a few hundred. */
  areas: Array<{ pos: number; size: number }>;
}

export interface ImagingRequest {
  source: ImagingSource;
  /** Final image path (`…/NAME.iso`), already sanitised and inside the output directory. */
  outputPath: string;
  options: ImagingOptions;
  /** Disc and job metadata written into the NAME.iso.json sidecar. */
  metadata: Record<string, unknown>;
  signal?: AbortSignal;
  onProgress?: (progress: ImagingProgress) => void;
  onLog?: (level: 'info' | 'warning' | 'error', message: string) => void;
}

type ImagingOutcome = 'completed' | 'paused' | 'cancelled';

/** The reads of the source one run made: what the drive had to do. */
export interface ReadSummary {
  calls: number;
  /** Bytes asked for, failed reads included. */
  bytes: number;
  failed: number;
  /** Re-reads of a sector read fine before, to tell a bad sector from a drive that is gone. */
  probes: number;
}

export interface ImagingResult {
  outcome: ImagingOutcome;
  outputPath: string;
  partPath: string;
  mapPath: string;
  sizeBytes: number;
  checksums: Partial<Record<HashAlgorithm, string>>;
  badSectors: BadSectorSummary;
  /** null when verification was off or the run did not complete. */
  verified: boolean | null;
  /** Whether the run continued from an existing map. */
  resumed: boolean;
  reads: ReadSummary;
  timings: { startedAt: string; finishedAt: string; copySeconds: number; hashSeconds: number; verifySeconds: number };
}
