import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

/** Directories searched besides PATH: losetup and friends live in sbin, which a non-login PATH may lack. */
const SBIN_DIRS = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

const resolvedTools = new Map<string, string>();

/**
 * Absolute path of an executable, or an Error naming the Debian package that provides it.
 * Tests call this instead of skipping: a missing prerequisite must fail the run loudly.
 */
export async function requireTool(name: string, debianPackage: string): Promise<string> {
  const cached = resolvedTools.get(name);
  if (cached !== undefined) return cached;
  const dirs = [...(process.env['PATH'] ?? '').split(delimiter).filter((dir) => dir !== ''), ...SBIN_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      resolvedTools.set(name, candidate);
      return candidate;
    } catch {
      // not in this directory; keep looking
    }
  }
  throw new Error(`required tool '${name}' not found; install the Debian package '${debianPackage}' (apt-get install ${debianPackage})`);
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** A failed subprocess, carrying what it printed so callers can match on the cause. */
export class CommandError extends Error {
  readonly stderr: string;
  readonly exitCode: number | null;

  constructor(command: string, args: readonly string[], exitCode: number | null, stderr: string, cause: unknown) {
    super(`${command} ${args.join(' ')} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim() || String(cause)}`, { cause });
    this.name = 'CommandError';
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

/** Runs a program with an argument array (never a shell) and resolves with its output. */
export function run(command: string, args: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: options.env ?? process.env }, (error, stdout, stderr) => {
      if (error) {
        const exitCode = typeof error.code === 'number' ? error.code : null;
        reject(new CommandError(command, args, exitCode, stderr, error));
        return;
      }
      resolve({ stdout, stderr });
    });
  });
}
