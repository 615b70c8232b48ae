import { readFile } from 'node:fs/promises';

/**
 * /proc/sys/dev/cdrom/info is a table: one row per property, one column per drive, e.g.
 *
 *   drive name:             sr1     sr0
 *   Can read DVD:           1       1
 *
 * The kernel lists drives newest first, so columns are matched by the "drive name" row.
 */
export type CdromInfo = Map<string, Map<string, string>>;

/** @internal exported for its tests */
export function parseCdromInfo(text: string): CdromInfo {
  const drives: CdromInfo = new Map();
  let names: string[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const key = line.slice(0, colon).trim();
    const values = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter((value) => value !== '');
    if (key === 'drive name') {
      names = values;
      for (const name of names) drives.set(name, new Map());
      continue;
    }
    values.forEach((value, index) => {
      const name = names[index];
      if (name !== undefined) drives.get(name)?.set(key, value);
    });
  }
  return drives;
}

/** The table, or an empty one when the kernel has no CD-ROM driver loaded (no file). */
export async function readCdromInfo(path: string): Promise<CdromInfo> {
  try {
    return parseCdromInfo(await readFile(path, 'utf8'));
  } catch {
    // No cdrom module, or /proc not mounted in a container: there is simply no table.
    return new Map();
  }
}

/** Rows that name a medium the drive reads or writes, and the capability each one grants. */
const CAPABILITY_ROWS: Array<[row: string, capability: string]> = [
  ['Can read DVD', 'dvd'],
  ['Can read MRW', 'mrw'],
  ['Can write CD-R', 'write-cd-r'],
  ['Can write CD-RW', 'write-cd-rw'],
  ['Can write DVD-R', 'write-dvd-r'],
  ['Can write DVD-RAM', 'write-dvd-ram'],
  ['Can write MRW', 'write-mrw'],
];

/** Every drive in the table reads CDs; the rest comes from its "Can …" rows. */
export function cdromCapabilities(properties: Map<string, string> | undefined): string[] {
  if (!properties) return [];
  return ['cd', ...CAPABILITY_ROWS.filter(([row]) => properties.get(row) === '1').map(([, capability]) => capability)];
}

/** False only when the drive says it cannot open its tray (a caddy or a fixed drive). */
export function canOpenTray(properties: Map<string, string> | undefined): boolean {
  return properties?.get('Can open tray') !== '0';
}
