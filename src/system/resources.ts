import { readFile, statfs } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { dirname } from 'node:path';
import { errnoCode } from '../errors.js';

/** CPU time the OS and this process used between two calls, as percentages. */
export interface CpuUsage {
  /** All CPUs busy time / elapsed time, 0..100. */
  systemPercent: number;
  /** This process's user+system time / (elapsed time x CPUs), 0..100. */
  processPercent: number;
}

interface CpuSample {
  at: bigint;
  busy: number;
  total: number;
  process: NodeJS.CpuUsage;
}

/** Samples closer together than this give too noisy a figure; the previous one is repeated. */
const MIN_WINDOW_NS = 1_000_000_000n;

function takeSample(): CpuSample {
  let busy = 0;
  let total = 0;
  for (const cpu of cpus()) {
    const { user, nice, sys, irq, idle } = cpu.times;
    busy += user + nice + sys + irq;
    total += user + nice + sys + irq + idle;
  }
  return { at: process.hrtime.bigint(), busy, total, process: process.cpuUsage() };
}

/** Percentages over the time since the previous call (at least a second; the first call measures since creation). */
export function createCpuMeter(): () => CpuUsage {
  let previous = takeSample();
  let last: CpuUsage = { systemPercent: 0, processPercent: 0 };
  return () => {
    const current = takeSample();
    const elapsedNs = current.at - previous.at;
    if (elapsedNs < MIN_WINDOW_NS) return last;
    const totalDelta = current.total - previous.total;
    const processMicros = current.process.user - previous.process.user + (current.process.system - previous.process.system);
    const capacityMicros = (Number(elapsedNs) / 1000) * Math.max(1, cpus().length);
    last = {
      systemPercent: totalDelta > 0 ? clampPercent(((current.busy - previous.busy) / totalDelta) * 100) : 0,
      processPercent: clampPercent((processMicros / capacityMicros) * 100),
    };
    previous = current;
    return last;
  };
}

function clampPercent(value: number): number {
  return Math.round(Math.min(100, Math.max(0, value)) * 10) / 10;
}

export interface MemoryUsage {
  usedBytes: number;
  totalBytes: number;
  /** Where the figures come from: a cgroup v2 memory limit, or the whole machine. */
  source: 'cgroup' | 'host';
}

export interface MemorySources {
  /** Default /sys/fs/cgroup (the cgroup v2 mount; inside a container, the container's own group). */
  cgroupRoot?: string;
  /** Default /proc/meminfo. */
  meminfo?: string;
}

async function readOptional(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT' || errnoCode(error) === 'EACCES') return null;
    throw error;
  }
}

function statValue(text: string, key: string, unitBytes = 1): number | null {
  const match = new RegExp(`^${key}:?\\s+(\\d+)`, 'm').exec(text);
  return match?.[1] === undefined ? null : Number(match[1]) * unitBytes;
}

/**
 * Memory in use and available to us. With a cgroup v2 limit (an LXC container, a systemd
 * MemoryMax) that limit is the total and the group's usage minus reclaimable file cache is used;
 * otherwise the machine's memory, with MemAvailable deciding what counts as used.
 */
export async function memoryUsage(sources: MemorySources = {}): Promise<MemoryUsage> {
  const root = sources.cgroupRoot ?? '/sys/fs/cgroup';
  const limitText = (await readOptional(`${root}/memory.max`))?.trim();
  const currentText = (await readOptional(`${root}/memory.current`))?.trim();
  if (limitText !== undefined && /^\d+$/.test(limitText) && currentText !== undefined && /^\d+$/.test(currentText)) {
    const stat = (await readOptional(`${root}/memory.stat`)) ?? '';
    const inactiveFile = statValue(stat, 'inactive_file') ?? 0;
    return { usedBytes: Math.max(0, Number(currentText) - inactiveFile), totalBytes: Math.min(Number(limitText), totalmem()), source: 'cgroup' };
  }
  const meminfo = (await readOptional(sources.meminfo ?? '/proc/meminfo')) ?? '';
  const total = statValue(meminfo, 'MemTotal', 1024) ?? totalmem();
  const available = statValue(meminfo, 'MemAvailable', 1024) ?? statValue(meminfo, 'MemFree', 1024) ?? 0;
  return { usedBytes: Math.max(0, total - available), totalBytes: total, source: 'host' };
}

export interface StorageUsage {
  usedBytes: number;
  totalBytes: number;
  /** What an unprivileged writer can still use. */
  freeBytes: number;
}

/** The file system holding `dir`; a directory not created yet is measured at its nearest existing parent. */
export async function storageUsage(dir: string): Promise<StorageUsage> {
  let path = dir;
  for (;;) {
    try {
      const fs = await statfs(path);
      return { usedBytes: (fs.blocks - fs.bfree) * fs.bsize, totalBytes: fs.blocks * fs.bsize, freeBytes: fs.bavail * fs.bsize };
    } catch (error) {
      const parent = dirname(path);
      if (errnoCode(error) !== 'ENOENT' || parent === path) throw error;
      path = parent;
    }
  }
}
