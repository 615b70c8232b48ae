import pino, { type Logger } from 'pino';

export type { Logger };

/** The specification's level names, mapped onto pino's ('warning' is pino's 'warn'). */
const PINO_LEVEL = { debug: 'debug', info: 'info', warning: 'warn', error: 'error' } as const;
export type LogLevel = keyof typeof PINO_LEVEL;

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
