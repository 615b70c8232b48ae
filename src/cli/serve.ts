import { type Command, InvalidArgumentError } from 'commander';
import { NODE_ROLES, type NodeRole } from '../cluster/model.js';
import { isNodeRole } from '../cluster/roles.js';
import { loadConfig } from '../config/load.js';
import { createLogger } from '../log.js';
import { startServer } from '../server.js';
import { createServiceManager } from '../system/service-manager.js';
import type { GlobalOptions } from './context.js';
import { EXIT } from './exit-codes.js';

interface ServeOptions {
  host?: string;
  port?: number;
  socket?: string;
  role: NodeRole;
}

function parsePort(value: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return Number(value);
}

function parseRole(value: string): NodeRole {
  if (!isNodeRole(value)) throw new InvalidArgumentError(`expected one of ${NODE_ROLES.join(', ')}`);
  return value;
}

/** Resolves once the server has been asked to stop by SIGTERM or SIGINT and has stopped. */
function stopOnSignal(close: (reason: string) => Promise<void>): Promise<void> {
  return new Promise((resolve, reject) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      // A second signal while jobs are being paused means "now": their maps are saved every few seconds anyway.
      const force = (): void => process.exit(EXIT.failed);
      process.once('SIGTERM', force);
      process.once('SIGINT', force);
      close(signal).then(() => {
        process.off('SIGTERM', force);
        process.off('SIGINT', force);
        resolve();
      }, reject);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description('run the service: web interface, REST API and job runner (stops gracefully on SIGTERM/SIGINT)')
    .option('--host <host>', 'address to listen on (server.host, default 127.0.0.1)')
    .option('--port <port>', 'port to listen on, 0 for any free port (server.port, default 8080)', parsePort)
    .option('--socket <path>', 'listen on this unix socket instead (server.socket)')
    .option(
      '--role <role>',
      'what this process runs: all (the default), web (pages and API, no drives) or worker (drives and jobs, health and metrics only); web and worker need the cluster database',
      parseRole,
      'all',
    )
    .action(async (options: ServeOptions, command: Command) => {
      const globals = command.optsWithGlobals<GlobalOptions>();
      const flags = [
        ...(options.host === undefined ? [] : [`server.host=${options.host}`]),
        ...(options.port === undefined ? [] : [`server.port=${options.port}`]),
        ...(options.socket === undefined ? [] : [`server.socket=${options.socket}`]),
      ];
      const config = loadConfig({ dataDir: globals.dataDir, configFile: globals.config, overrides: [...(globals.set ?? []), ...flags] });
      const log = createLogger({ level: config.log.level });
      const serviceManager = createServiceManager({ env: process.env, log });
      const server = await startServer({
        config,
        log,
        version: program.version() ?? 'unknown',
        role: options.role,
        onSetupLink: (link) =>
          process.stdout.write(`No admin exists yet. Create the first one within the hour at\n  ${link}\nor run: disk2iso user add NAME --role admin\n`),
      });
      process.stdout.write(`disk2iso listening on ${server.url}\n`);
      serviceManager.ready(`listening on ${server.url}`);
      await stopOnSignal((reason) => {
        serviceManager.stopping();
        return server.close(reason);
      });
      await serviceManager.close();
      log.flush();
      process.exitCode = EXIT.ok;
    });
}
