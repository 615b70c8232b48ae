import { spawn } from 'node:child_process';
import { UnavailableError, errnoCode } from '../errors.js';

/** The program Debian's `par2` package installs (par2cmdline); looked up on PATH. */
const PAR2 = 'par2';
/** What of its output is kept for an error message. */
const TAIL_BYTES = 4096;

interface Par2Run {
  /** par2's exit code: 0 done, 1 repair possible (verify), 2 repair impossible, 3+ errors. */
  code: number;
  /** The end of what it printed, for an error message. */
  tail: string;
}

/**
 * Runs par2 without a shell, its arguments as given (callers put `--` before paths). Reports the
 * percentages it prints; aborting the signal ends it with SIGTERM. UnavailableError
 * `par2_unavailable` when the program is not installed.
 */
export function runPar2(args: readonly string[], options: { signal?: AbortSignal; onPercent?: (percent: number) => void } = {}): Promise<Par2Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(PAR2, [...args], { shell: false, stdio: ['ignore', 'pipe', 'pipe'], ...(options.signal ? { signal: options.signal } : {}) });
    let tail = '';
    const keep = (chunk: Buffer) => {
      tail = (tail + chunk.toString('utf8')).slice(-TAIL_BYTES);
    };
    child.stdout.on('data', (chunk: Buffer) => {
      keep(chunk);
      const percents = chunk.toString('utf8').match(/(\d{1,3}(?:\.\d+)?)%/g);
      const last = percents?.at(-1);
      if (last !== undefined) options.onPercent?.(Number.parseFloat(last));
    });
    child.stderr.on('data', keep);
    child.on('error', (error) => {
      if (errnoCode(error) === 'ENOENT') reject(new UnavailableError('par2_unavailable', 'par2 is not installed (Debian package par2)'));
      else reject(error);
    });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal === null ? 255 : 128), tail: tail.replace(/\r/g, '\n').trim() }));
  });
}
