import { execFile } from 'node:child_process';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';

/** systemd-notify waits for the service manager to take each message (it syncs with a barrier); a manager that hangs does not hold the stop up longer. */
const NOTIFY_TIMEOUT_MS = 10_000;

/**
 * Tells systemd how the service is doing (sd_notify(3)): READY=1 once it listens, STOPPING=1 when it
 * begins to stop, and WATCHDOG=1 while its event loop keeps turning. Does nothing where systemd did
 * not ask for it (no NOTIFY_SOCKET).
 */
export interface ServiceManager {
  ready(status: string): void;
  stopping(): void;
  /** Stops the watchdog and resolves once every message has been delivered (or has failed). */
  close(): Promise<void>;
}

export interface ServiceManagerDeps {
  env: NodeJS.ProcessEnv;
  log: Logger;
}

/**
 * Node cannot send to a unix datagram socket, so each message goes through systemd's own
 * systemd-notify, without a shell. It sends from its own process, which is why the unit says
 * NotifyAccess=all; it waits until systemd has read the message, so the message is never dropped as
 * coming from a process that has already gone.
 */
export function createServiceManager(deps: ServiceManagerDeps): ServiceManager {
  const { env, log } = deps;
  const socket = env.NOTIFY_SOCKET;
  if (socket === undefined || socket === '') return { ready() {}, stopping() {}, close: async () => {} };
  const childEnv = { PATH: env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: socket };

  // One message after the other: STOPPING=1 never overtakes READY=1.
  let delivered: Promise<void> = Promise.resolve();
  let inFlight = 0;
  const send = (assignments: string[]): void => {
    inFlight += 1;
    delivered = delivered.then(
      () =>
        new Promise<void>((resolve) => {
          execFile('systemd-notify', assignments, { env: childEnv, timeout: NOTIFY_TIMEOUT_MS }, (error, _stdout, stderr) => {
            inFlight -= 1;
            if (error) log.warn({ err: error, stderr: stderr.trim() }, `telling systemd ${assignments[0]} failed: ${errorMessage(error)}`);
            resolve();
          });
        }),
    );
  };

  const watchdog = watchdogIntervalMs(env, process.pid);
  let timer: NodeJS.Timeout | null = null;
  if (watchdog !== null) {
    // The timer fires only while the event loop turns; a blocked loop stops the pings and systemd restarts the service.
    timer = setInterval(() => {
      if (inFlight === 0) send(['WATCHDOG=1']);
    }, watchdog);
    timer.unref();
  }

  return {
    ready(status) {
      send(['READY=1', `STATUS=${status}`]);
    },
    stopping() {
      send(['STOPPING=1', 'STATUS=stopping: pausing running jobs']);
    },
    async close() {
      if (timer) clearInterval(timer);
      timer = null;
      await delivered;
    },
  };
}

/** Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; null when the watchdog is off or meant for another process. */
function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isSafeInteger(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== '' && Number(env.WATCHDOG_PID) !== pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}
