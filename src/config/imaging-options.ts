import type { ImagingOptions } from '../imaging/types.js';
import type { Config, HashAlgorithm } from './schema.js';

/** Per-job choices that may differ from the configured defaults. */
export interface ImagingOverrides {
  readAttempts?: number | undefined;
  checksums?: HashAlgorithm[] | undefined;
  verify?: boolean | undefined;
}

/** The engine's options: the configured defaults, with what the user chose for this job on top. */
export function imagingOptionsFrom(config: Config, overrides: ImagingOverrides = {}): ImagingOptions {
  return {
    readAttempts: overrides.readAttempts ?? config.imaging.read_attempts,
    checksums: overrides.checksums ?? [...config.imaging.checksums],
    verify: overrides.verify ?? config.imaging.verify,
    clusterSectors: config.imaging.cluster_sectors,
    directIo: config.imaging.direct_io,
    mapSaveIntervalMs: config.imaging.map_save_interval_seconds * 1000,
    stopThresholdPercent: config.storage.stop_threshold_percent,
    keepPartialOnCancel: config.storage.keep_partial_on_cancel,
  };
}
