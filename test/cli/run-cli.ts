import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/config/load.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunningCli {
  child: ChildProcess;
  /** Everything written to stderr so far (progress lines, messages). */
  stderr(): string;
  done: Promise<CliResult>;
}

/** A unix account other than the test's own (root) to run the command as. */
export interface RunAs {
  uid: number;
  gid: number;
}

/** Starts `bin/disk2iso` as a user would (a separate process, no shell), with its own data dir. */
export function startCli(args: string[], env: Record<string, string>, user?: RunAs): RunningCli {
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'disk2iso'), ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...user,
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stderr: () => stderr, done };
}

export function runCli(args: string[], env: Record<string, string>, user?: RunAs): Promise<CliResult> {
  return startCli(args, env, user).done;
}
