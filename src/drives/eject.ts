import { execFile } from 'node:child_process';
import { UnavailableError, errnoCode } from '../errors.js';

/** Opens the tray of an optical drive. */
export type Ejector = (devicePath: string) => Promise<void>;

const EJECT_TIMEOUT_MS = 60_000;

/** Runs util-linux `eject` (Debian package `eject`) on the device, without a shell. */
export function createEjector(options: { command?: string } = {}): Ejector {
  const command = options.command ?? 'eject';
  return (devicePath) =>
    new Promise((resolve, reject) => {
      execFile(command, [devicePath], { encoding: 'utf8', timeout: EJECT_TIMEOUT_MS }, (error, _stdout, stderr) => {
        if (!error) {
          resolve();
          return;
        }
        if (errnoCode(error) === 'ENOENT') {
          reject(
            new UnavailableError(
              'tool_missing',
              `cannot eject ${devicePath}: the eject program is not installed (Debian package "eject": apt-get install eject)`,
              { tool: command, package: 'eject' },
            ),
          );
          return;
        }
        const reason = stderr.trim() || error.message;
        reject(new UnavailableError('eject_failed', `eject ${devicePath} failed: ${reason}`, { device: devicePath }));
      });
    });
}
