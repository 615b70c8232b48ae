import { randomBytes } from 'node:crypto';
import { open, readFile, writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/config/load.js';

/** One line naming the machine, printed with every table so figures are never read out of context. */
export function machineDescription(): string {
  const cpu = cpus()[0]?.model.trim() ?? 'unknown CPU';
  return `${cpus().length} x ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`;
}

/** The Node flags `bin/disk2iso` starts with (its first line), so a benchmark's child runs as the product does. */
export async function productNodeFlags(): Promise<string[]> {
  const firstLine = (await readFile(join(packageRoot(), 'bin', 'disk2iso'), 'utf8')).split('\n', 1)[0] ?? '';
  const words = firstLine.split(/\s+/);
  const node = words.indexOf('node');
  if (!firstLine.startsWith('#!') || node < 0) throw new Error(`bin/disk2iso does not start with a node #! line: ${firstLine}`);
  return words.slice(node + 1).filter((word) => word !== '');
}

/** Value at quantile q (0..1) of the numbers, nearest rank. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

export function markdownTable(header: string[], rows: string[][]): string {
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** Replaces the section between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` in docs/benchmarks.md. */
export async function writeSection(name: string, body: string): Promise<void> {
  const file = join(packageRoot(), 'docs', 'benchmarks.md');
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    text = '# Benchmarks\n';
  }
  const section = `${start}\n${body.trim()}\n${end}`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  text = from >= 0 && to > from ? `${text.slice(0, from)}${section}${text.slice(to + end.length)}` : `${text.trimEnd()}\n\n${section}\n`;
  await writeFile(file, text);
}

/** A source of incompressible data for the benchmarks, written in large chunks. */
export async function writeRandomFile(file: string, bytes: number): Promise<void> {
  const handle = await open(file, 'w');
  try {
    const chunk = 16 * 2 ** 20;
    for (let written = 0; written < bytes; written += chunk) await handle.write(randomBytes(Math.min(chunk, bytes - written)));
  } finally {
    await handle.close();
  }
}
