import { Command, CommanderError } from 'commander';
import { registerApiKeyCommand } from './cli/apikey.js';
import { registerBackupCommands } from './cli/backup.js';
import { registerConfigCommand } from './cli/config.js';
import { registerCreateCommand } from './cli/create.js';
import { registerDevicesCommand } from './cli/devices.js';
import { EXIT, describeError, exitCodeFor } from './cli/exit-codes.js';
import { registerLogsCommand } from './cli/logs.js';
import { registerMigrateCommand } from './cli/migrate.js';
import { registerMonitoringCommands } from './cli/monitoring.js';
import { registerServeCommand } from './cli/serve.js';
import { registerStatusCommands } from './cli/status.js';
import { registerUserCommand } from './cli/user.js';
import { registerVerifyCommand } from './cli/verify.js';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function buildProgram(version: string): Command {
  const program = new Command('disk2iso')
    .description('Bit-exact, verified archival images of optical discs and other block devices')
    .version(version)
    .option('--data-dir <dir>', 'data directory (DISK2ISO_DATA_DIR)')
    .option('--config <file>', 'configuration file (DISK2ISO_CONFIG)')
    .option('--set <key=value>', 'override one setting, e.g. --set imaging.read_attempts=3 (repeatable)', collect, [])
    .showHelpAfterError()
    .exitOverride();
  registerDevicesCommand(program);
  registerCreateCommand(program);
  registerVerifyCommand(program);
  registerUserCommand(program);
  registerApiKeyCommand(program);
  registerServeCommand(program);
  registerStatusCommands(program);
  registerConfigCommand(program);
  registerLogsCommand(program);
  registerBackupCommands(program);
  registerMonitoringCommands(program);
  registerMigrateCommand(program);
  return program;
}

export async function main(argv: string[], version: string): Promise<number> {
  const program = buildProgram(version);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.ok;
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? EXIT.ok : EXIT.invalid;
    }
    process.stderr.write(`${describeError(error)}\n`);
    return exitCodeFor(error);
  }
}
