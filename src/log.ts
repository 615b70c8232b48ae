import pino, { type Logger } from 'pino';
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
}

export function createLogger(options: CreateLoggerOptions): Logger {
  return pino(
    { level: PINO_LEVEL[options.level], base: { service: 'disk2iso' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: options.fd ?? 1, sync: false }),
  );
}

/** A logger that drops everything, for callers (tests, one-shot CLI commands) that want no log output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
