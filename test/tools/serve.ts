import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../src/config/load.js';

export interface ServeProcess {
  child: ChildProcess;
  /** From the `disk2iso listening on …` line. */
  address: Promise<string>;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `bin/disk2iso serve …` as its own process, the way systemd runs it. */
export function serve(args: string[], env: Record<string, string>): ServeProcess {
  const child = spawn(process.execPath, [join(packageRoot(), 'bin', 'disk2iso'), 'serve', ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  const address = new Promise<string>((resolve, reject) => {
    const collect = (chunk: Buffer): void => {
      output += chunk.toString();
      const match = /^disk2iso listening on (\S+)$/m.exec(output);
      if (match?.[1]) resolve(match[1]);
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    void exited.then(({ code, signal }) => reject(new Error(`serve ended (code ${code}, signal ${signal}) before listening:\n${output}`)));
  });
  address.catch(() => undefined);
  return { child, address, output: () => output, exited };
}
