import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** A compiled test fixture script running in its own Node process, read line by line. */
export interface FixtureProcess {
  child: ChildProcessWithoutNullStreams;
  /** The next line the script printed; rejects if it exits first. */
  nextLine(): Promise<string>;
  /** Resolves with the exit code (null when a signal ended it) and the signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

export function startFixture(script: URL, args: readonly string[]): FixtureProcess {
  const child = spawn(process.execPath, [fileURLToPath(script), ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    exited,
    async nextLine() {
      const next = await lines.next();
      if (next.done === true) {
        const { code, signal } = await exited;
        throw new Error(`fixture ${script.pathname} ended (code ${code}, signal ${signal}) before printing a line: ${stderr}`);
      }
      return next.value;
    },
  };
}

/** For fixtures: waits until the test writes a line to stdin, so several processes start together. */
export async function waitForGo(): Promise<void> {
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  await lines.next();
}
