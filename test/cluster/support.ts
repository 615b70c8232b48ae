import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterLogger } from '../../src/cluster/event-bridge.js';

/** Waits until `condition` holds, checking every 20 ms; fails after 30 s naming what it waited for. */
export async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await sleep(20);
  }
}

/** A logger that keeps its lines, to see what the engines reported. */
export function recordingLogger(): ClusterLogger & { lines: Array<{ level: string; message: string }> } {
  const lines: Array<{ level: string; message: string }> = [];
  return {
    lines,
    info: (_details, message) => lines.push({ level: 'info', message }),
    warn: (_details, message) => lines.push({ level: 'warn', message }),
  };
}
