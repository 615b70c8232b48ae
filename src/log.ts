import { fstatSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';
import type { JsonObject } from './json.js';

export type { Logger };

/** The specification's level names, least severe first: of the process log, the application log and job logs. */
export const LOG_LEVELS = ['debug', 'info', 'warning', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** An application log line, as GET /api/v1/logs and `disk2iso logs` serve them. */
export interface LogRecord {
  id: number;
  at: string;
  level: LogLevel;
  /** The part of the service that wrote it (`http`, `jobs`, `drives`, …). */
  source: string;
  message: string;
  jobId: string | null;
  details: JsonObject | null;
}

/** The specification's level names mapped onto pino's ('warning' is pino's 'warn'). */
export const PINO_LEVEL = { debug: 'debug', info: 'info', warning: 'warn', error: 'error' } as const satisfies Record<LogLevel, pino.Level>;

export interface CreateLoggerOptions {
  level: LogLevel;
  /** File descriptor to write JSON lines to; the CLI uses stderr so stdout stays machine-readable. */
  fd?: number;
  /** Where JOURNAL_STREAM is read from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

export function createLogger(options: CreateLoggerOptions): Logger {
  const fd = options.fd ?? 1;
  const destination = pino.destination({ fd, sync: false });
  return pino(
    { level: PINO_LEVEL[options.level], base: { service: 'disk2iso' }, timestamp: pino.stdTimeFunctions.isoTime },
    writesToJournal(fd, options.env ?? process.env) ? withJournalPriority(destination) : destination,
  );
}

/**
 * systemd sets JOURNAL_STREAM to the device and inode of the stream it connected to stdout and
 * stderr (systemd.exec(5)); only when `fd` is that very stream does the journal read what we write.
 */
function writesToJournal(fd: number, env: NodeJS.ProcessEnv): boolean {
  const stream = env.JOURNAL_STREAM;
  if (stream === undefined || !/^\d+:\d+$/.test(stream)) return false;
  try {
    const stat = fstatSync(fd, { bigint: true });
    return stream === `${stat.dev}:${stat.ino}`;
  } catch {
    return false;
  }
}

/**
 * Prefixes each JSON line with its syslog priority as `<N>`, which journald takes as the entry's
 * PRIORITY and strips from MESSAGE (sd-daemon(3)), so `journalctl -p err` shows errors and worse.
 */
function withJournalPriority(destination: ReturnType<typeof pino.destination>): DestinationStream {
  return {
    write: (line: string) => destination.write(`<${journalPriority(line)}>${line}`),
    // pino's flush() reaches the destination only through the stream it was given.
    flush: (callback: (error?: Error) => void) => destination.flush(callback),
  } as DestinationStream;
}

/** pino's numeric levels (fatal 60, error 50, warn 40, info 30) and the syslog priority each maps to; debug and trace are debug (7). */
const SYSLOG_PRIORITY: ReadonlyArray<readonly [level: number, priority: number]> = [
  [60, 2],
  [50, 3],
  [40, 4],
  [30, 6],
];

/** The priority of one line, from pino's numeric level, the first key of every line it writes. */
function journalPriority(line: string): number {
  const level = Number(/^\{"level":(\d+)/.exec(line)?.[1] ?? 30);
  return SYSLOG_PRIORITY.find(([atLeast]) => level >= atLeast)?.[1] ?? 7;
}

/** A logger that drops everything, for callers (tests, one-shot CLI commands) that want no log output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
