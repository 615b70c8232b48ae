import { type ChildProcess, spawn } from 'node:child_process';
import { errnoCode } from '../errors.js';
import { parseUdevProperties } from './udev.js';

/**
 * Tells at once which block device changed (a disc inserted or taken out, a loop device attached
 * to another file, a device added or removed), from `udevadm monitor`, so a drive is probed right
 * after its change instead of at the next round. Both the kernel's uevents and udev's own are
 * followed: in a container without udevd only the kernel's arrive. Where udevadm is missing the
 * refresher's rounds are all there is; where it ends, it is started again after a pause.
 */
export interface UdevMonitor {
  stop(): void;
}

export interface UdevMonitorOptions {
  /** Told the device node (DEVNAME, e.g. `/dev/sr0`) of every block device event. */
  onDevice(devicePath: string): void;
  /** Told once when the monitor cannot run (udevadm missing) or ended, with why. */
  onProblem?(message: string): void;
  command?: string;
  /** Pause before starting an ended monitor again; default RESTART_MS. */
  restartMs?: number;
}

const RESTART_MS = 30_000;
/** An event's block of properties is at most a few KiB; a line longer than this is not udevadm's. */
const MAX_BUFFER = 1024 * 1024;

export function startUdevMonitor(options: UdevMonitorOptions): UdevMonitor {
  const command = options.command ?? 'udevadm';
  let child: ChildProcess | null = null;
  let stopped = false;
  let restart: NodeJS.Timeout | null = null;
  let told = false;

  const problem = (message: string): void => {
    if (told) return;
    told = true;
    options.onProblem?.(message);
  };

  const start = (): void => {
    let buffer = '';
    const monitor = spawn(command, ['monitor', '--kernel', '--udev', '--subsystem-match=block', '--property'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child = monitor;
    monitor.stdout?.setEncoding('utf8');
    monitor.stdout?.on('data', (chunk: string) => {
      buffer += chunk;
      if (buffer.length > MAX_BUFFER) buffer = '';
      let end = buffer.indexOf('\n\n');
      while (end !== -1) {
        const properties = parseUdevProperties(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        const device = properties['DEVNAME'];
        if (properties['SUBSYSTEM'] === 'block' && device?.startsWith('/dev/')) options.onDevice(device);
        end = buffer.indexOf('\n\n');
      }
    });
    monitor.on('error', (error) => {
      if (errnoCode(error) === 'ENOENT') {
        // No udevadm: nothing to start again.
        stopped = true;
        problem(`${command} is missing; discs are noticed by the drive checks every few seconds only`);
      }
    });
    monitor.on('exit', (code, signal) => {
      child = null;
      if (stopped) return;
      problem(`${command} monitor ended (${signal ?? `exit code ${code}`}); starting it again in ${Math.round((options.restartMs ?? RESTART_MS) / 1000)} s`);
      restart = setTimeout(start, options.restartMs ?? RESTART_MS);
      restart.unref();
    });
  };

  start();
  return {
    stop() {
      stopped = true;
      if (restart) clearTimeout(restart);
      child?.kill();
      child = null;
    },
  };
}
