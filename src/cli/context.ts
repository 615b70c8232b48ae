import { loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { type DriveService, createDriveService } from '../drives/service.js';
import { type Logger, createLogger } from '../log.js';

export interface GlobalOptions {
  dataDir?: string;
  config?: string;
  set?: string[];
}

export interface CliContext {
  config: Config;
  log: Logger;
  drives: DriveService;
}

/** Everything a command needs, built from the global flags; commands never read process.env themselves. */
export function createCliContext(options: GlobalOptions): CliContext {
  const config = loadConfig({ dataDir: options.dataDir, configFile: options.config, overrides: options.set });
  // Commands own stdout; diagnostics go to stderr and only from warnings up unless asked for.
  const log = createLogger({ level: config.log.level === 'info' ? 'warning' : config.log.level, fd: 2 });
  // On the cluster database this host's drives carry its node's name, as the service's do: a job the CLI makes names the same drive.
  const node = config.database.url === null ? {} : { node: config.cluster.node_name };
  return { config, log, drives: createDriveService({ config, log, ...node }) };
}
