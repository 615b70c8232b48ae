import { readFile, readlink } from 'node:fs/promises';
import { hostname } from 'node:os';
import { errnoCode } from '../errors.js';
import type { LeaseHolder } from './model.js';

/** State (field 3) and start time (field 22) of a process, from /proc/PID/stat; null when there is no such process. */
async function processStat(pid: number | 'self'): Promise<{ state: string; startTicks: number } | null> {
  let text: string;
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'ESRCH') return null;
    throw error;
  }
  // Field 2 is the command name in parentheses and may itself contain spaces and parentheses.
  const fields = text
    .slice(text.lastIndexOf(')') + 2)
    .trim()
    .split(' ');
  const state = fields[0];
  const startTicks = Number(fields[19]);
  if (state === undefined || !Number.isSafeInteger(startTicks)) throw new Error(`unexpected /proc/${pid}/stat: ${text.slice(0, 200)}`);
  return { state, startTicks };
}

/** Read once: a running process keeps its boot, pid namespace, pid and start time (the host name may change). */
let thisProcess: Promise<Omit<LeaseHolder, 'host'>> | undefined;

async function readThisProcess(): Promise<Omit<LeaseHolder, 'host'>> {
  const [bootId, pidNamespace, stat] = await Promise.all([
    readFile('/proc/sys/kernel/random/boot_id', 'utf8'),
    readlink('/proc/self/ns/pid'),
    processStat('self'),
  ]);
  if (stat === null) throw new Error('/proc/self/stat is missing');
  return { bootId: bootId.trim(), pidNamespace, pid: process.pid, startTicks: stat.startTicks };
}

/** This process as the holder of the leases it takes. */
export async function currentLeaseHolder(): Promise<LeaseHolder> {
  thisProcess ??= readThisProcess();
  return { host: hostname(), ...(await thisProcess) };
}

/**
 * True when `holder` is a process on this host that has ended: its pid is gone, now belongs to a
 * process started at another time, or is a zombie; or the host has booted since. A holder on
 * another host or in another pid namespace cannot be seen from here and counts as alive, and so
 * does a process stuck in a read (state D): it still exists and may still write.
 */
export async function leaseHolderGone(holder: LeaseHolder): Promise<boolean> {
  const self = await currentLeaseHolder();
  if (holder.host !== self.host || holder.pidNamespace !== self.pidNamespace) return false;
  if (holder.bootId !== self.bootId) return true;
  if (holder.pid === self.pid) return holder.startTicks !== self.startTicks;
  const stat = await processStat(holder.pid);
  if (stat === null || stat.startTicks !== holder.startTicks) return true;
  return stat.state === 'Z' || stat.state === 'X';
}
