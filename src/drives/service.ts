import { createHash } from 'node:crypto';
import { realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Config } from '../config/schema.js';
import { ConflictError, NotFoundError, UnavailableError, errnoCode, errorMessage } from '../errors.js';
import { writeDemoIso } from '../media/iso9660-writer.js';
import { probeMedia } from '../media/probe.js';
import { type CdromInfo, canOpenTray, cdromCapabilities, readCdromInfo } from './cdrom-info.js';
import { type Ejector, createEjector } from './eject.js';
import { type FlightStage, createFlights, createSlots } from './flights.js';
import { listOpticalNames, readBlockGeometry, readLoopBackingFile, readScsiIdentity } from './sysfs.js';
import type { Drive, MediaInfo } from './types.js';
import { type UdevReader, createUdevadmReader, udevDriveCapabilities, udevIdentity, udevMediaFacts } from './udev.js';

export interface DriveService {
  /** Everything that can be imaged right now: optical drives, configured extras, the demo drive. */
  list(): Promise<Drive[]>;
  /** A discovered drive by id; anything else (unknown ids, raw paths) is NotFoundError `unknown_device`. */
  get(id: string): Promise<Drive>;
  /**
   * What is in the drive now, read from it: never call this from a request (src/drives/state.ts
   * keeps the answers for them). One probe per drive at a time (a second caller shares the one
   * in flight) and at most DRIVE_IO_SLOTS over all drives; UnavailableError `drive_not_responding`
   * when the drive gives no answer within the probe timeout, `probe_backlog` when the probe could
   * not even start because drives that do not answer hold every slot.
   */
  probe(id: string): Promise<MediaInfo>;
  /** The probe of a drive in flight, however long it takes, or null: for a caller whose probe() timed out and still wants the answer. */
  pending(id: string): Promise<MediaInfo> | null;
  /** Opens the tray of an optical drive; other kinds are ConflictError `not_ejectable`. */
  eject(id: string): Promise<void>;
  /** The demo disc's image, created on first use, or null when no demo drive is offered. */
  resolveDemoImage(): Promise<string | null>;
}

/** pino's Logger satisfies this; so does anything that takes (details, message). */
export interface DriveLogger {
  warn(details: Record<string, unknown>, message: string): void;
}

export interface DriveServiceDeps {
  config: Config;
  log?: DriveLogger;
  /** Default /sys. */
  sysfsRoot?: string;
  /** Default /proc/sys/dev/cdrom/info. */
  procCdromInfo?: string;
  /** Where optical device nodes live; default /dev. */
  devRoot?: string;
  /** Default: udevadm, or no udev facts when udevadm is missing. */
  udev?: UdevReader;
  /** Default: util-linux eject. */
  ejector?: Ejector;
  /** How long a caller waits for a probe, or for the file system of an extra source to answer; default PROBE_TIMEOUT_MS. */
  probeTimeoutMs?: number;
  /** In the cluster mode, the node these drives belong to: their ids become `NODE.ID` (clusterDriveId). */
  node?: string;
}

/** A healthy drive answers a probe within a few seconds, even while it spins a disc up. */
const PROBE_TIMEOUT_MS = 10_000;
/**
 * Threadpool threads that drive I/O may hold at once (of libuv's four): probes and the file-system
 * checks of extra sources share them, so drives that hang leave the rest to the database, images
 * and pages.
 * @internal exported for its tests
 */
export const DRIVE_IO_SLOTS = 2;

/** A drive's name on its machine. */
const DRIVE_ID_PATTERN = /^[a-z][a-z0-9-]{0,63}$/;
/** A drive's id as requests give it: its name, or in the cluster the node's name, a dot, and its name. */
export const DEVICE_ID_PATTERN = /^(?:[a-z0-9][a-z0-9-]{0,62}\.)?[a-z][a-z0-9-]{0,63}$/;

/**
 * A drive's id in the cluster: the node's name (cluster.node_name: lower-case letters, digits, hyphens) and its id on the node.
 * @internal exported for the tests, which name a service's drives
 */
export function clusterDriveId(node: string, localId: string): string {
  return `${node}.${localId}`;
}
const DEMO_DRIVE_ID = 'demo';
const DEMO_DESCRIPTION = 'Demo disc: an image file disk2iso made itself, not a real drive';

interface Source {
  drive: Drive;
  probe(): Promise<MediaInfo>;
}

/** What the file system says about an entry of drives.extra. */
interface ExtraCheck {
  path: string;
  isBlock: boolean;
  isFile: boolean;
}

export function createDriveService(deps: DriveServiceDeps): DriveService {
  const { config } = deps;
  const sysfsRoot = deps.sysfsRoot ?? '/sys';
  const procCdromInfo = deps.procCdromInfo ?? '/proc/sys/dev/cdrom/info';
  const devRoot = deps.devRoot ?? '/dev';
  const udev = deps.udev ?? createUdevadmReader();
  const ejector = deps.ejector ?? createEjector();
  const demoImagePath = join(config.data_dir, 'demo', 'disk2iso-demo.iso');
  const probeTimeoutMs = deps.probeTimeoutMs ?? PROBE_TIMEOUT_MS;
  const slots = createSlots(DRIVE_IO_SLOTS);
  const probes = createFlights<MediaInfo>(slots);
  const extraChecks = createFlights<ExtraCheck>(slots);
  /** The last answer for each extra source, used while its file system does not answer. */
  const lastExtraChecks = new Map<string, ExtraCheck>();
  /** The sources of the last listing: a probe right after one (the refresher's) need not list again. */
  let listed = new Map<string, Source>();
  /** Paths already warned about, so a missing extra device is logged once, not on every listing. */
  const warnedPaths = new Set<string>();
  let demoImage: Promise<string> | null = null;

  const warnOnce = (path: string, message: string, details: Record<string, unknown> = {}): void => {
    if (warnedPaths.has(path)) return;
    warnedPaths.add(path);
    deps.log?.warn({ path, ...details }, message);
  };

  const ensureDemoImage = (): Promise<string> => {
    demoImage ??= (async () => {
      try {
        if ((await stat(demoImagePath)).isFile()) return demoImagePath;
      } catch (error) {
        if (errnoCode(error) !== 'ENOENT') throw error;
      }
      await writeDemoIso(demoImagePath);
      return demoImagePath;
    })().catch((error: unknown) => {
      demoImage = null;
      throw new UnavailableError('demo_unavailable', `cannot create the demo disc at ${demoImagePath}: ${errorMessage(error)}`, { path: demoImagePath });
    });
    return demoImage;
  };

  const opticalSource = async (name: string, cdromInfo: CdromInfo): Promise<Source> => {
    const path = join(devRoot, name);
    const identity = await readScsiIdentity(sysfsRoot, name);
    const properties = await udev(path);
    const fromUdev = udevIdentity(properties);
    const vendor = identity.vendor ?? fromUdev.vendor;
    const model = identity.model ?? fromUdev.model;
    const driveInfo = cdromInfo.get(name);
    const capabilities = orderCapabilities([...cdromCapabilities(driveInfo), ...udevDriveCapabilities(properties)]);
    const drive: Drive = {
      id: name,
      path,
      kind: 'optical',
      vendor,
      model,
      revision: identity.revision,
      capabilities,
      ejectable: canOpenTray(driveInfo),
      description: [vendor, model].filter((part) => part !== null).join(' ') || `Optical drive ${name}`,
    };
    return {
      drive,
      probe: async () => {
        // Read udev again: the disc may have changed since the listing.
        const facts = udevMediaFacts(await udev(path));
        const geometry = await readBlockGeometry(sysfsRoot, name);
        // An empty drive reports size 0; with a disc in it that means the kernel has not sized it yet.
        return probeMedia(path, { sectorSize: geometry.logicalBlockSize ?? 2048, deviceSizeBytes: geometry.sizeBytes || null, udev: facts });
      },
    };
  };

  const blockSource = async (name: string, path: string): Promise<Source> => {
    const identity = await readScsiIdentity(sysfsRoot, name);
    const backingFile = name.startsWith('loop') ? await readLoopBackingFile(sysfsRoot, name) : null;
    const product = [identity.vendor, identity.model].filter((part) => part !== null).join(' ');
    const description = backingFile ? `Loop device ${path} (backing file ${backingFile})` : `Block device ${path}${product ? ` (${product})` : ''}`;
    return {
      drive: {
        id: name,
        path,
        kind: 'block',
        vendor: identity.vendor,
        model: identity.model,
        revision: identity.revision,
        capabilities: [],
        ejectable: false,
        description,
        ...(backingFile ? { backingFile } : {}),
      },
      probe: async () => {
        const geometry = await readBlockGeometry(sysfsRoot, name);
        return probeMedia(path, { sectorSize: geometry.logicalBlockSize ?? config.imaging.sector_size, deviceSizeBytes: geometry.sizeBytes });
      },
    };
  };

  const fileSource = (path: string): Source => ({
    drive: {
      id: `file-${createHash('sha1').update(path).digest('hex').slice(0, 10)}`,
      path,
      kind: 'file',
      vendor: null,
      model: null,
      revision: null,
      capabilities: [],
      ejectable: false,
      description: `Image file ${path}`,
    },
    probe: async () => {
      const [media, stats] = await Promise.all([probeMedia(path, { sectorSize: config.imaging.sector_size }), stat(path)]);
      return { ...media, sourceStamp: `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}` };
    },
  });

  const checkExtra = async (configured: string): Promise<ExtraCheck> => {
    const path = await realpath(configured);
    const stats = await stat(path);
    return { path, isBlock: stats.isBlockDevice(), isFile: stats.isFile() };
  };

  /** What the file system says about an extra source, or why it says nothing; its last answer while it does not answer. */
  const lookUpExtra = async (configured: string): Promise<ExtraCheck | { error: unknown }> => {
    const known = lastExtraChecks.get(configured);
    // The last check still waits for its file system: another one would wait just as long.
    if (known && extraChecks.pending(configured) !== null) return known;
    try {
      const checked = await extraChecks.run(
        configured,
        () => checkExtra(configured),
        probeTimeoutMs,
        () => new UnavailableError('source_not_responding', `${configured} did not answer`),
      );
      lastExtraChecks.set(configured, checked);
      return checked;
    } catch (error) {
      if (known && error instanceof UnavailableError && error.code === 'source_not_responding') return known;
      lastExtraChecks.delete(configured);
      return { error };
    }
  };

  /**
   * An extra source that does not exist (yet) or is neither a block device nor a regular file is
   * left out of the listing with one logged warning: listing it would offer a drive that cannot
   * be probed or imaged, and leaving it out lets it appear by itself once it exists. An image file
   * on a mount that hangs keeps its last known form while its file system does not answer.
   */
  const extraSource = async (configured: string, checked: ExtraCheck | { error: unknown }, cdromInfo: CdromInfo): Promise<Source | null> => {
    if ('error' in checked) {
      warnOnce(configured, 'drives.extra entry cannot be used; skipped', { error: errorMessage(checked.error) });
      return null;
    }
    if (!checked.isBlock && !checked.isFile) {
      warnOnce(configured, 'drives.extra entry is neither a block device nor an image file; skipped');
      return null;
    }
    warnedPaths.delete(configured);
    const { path } = checked;
    if (!checked.isBlock) return fileSource(path);
    const name = basename(path);
    if (!DRIVE_ID_PATTERN.test(name)) {
      warnOnce(configured, 'drives.extra block device has a name disk2iso cannot use as an id; skipped', { name });
      return null;
    }
    return /^sr\d+$/.test(name) ? opticalSource(name, cdromInfo) : blockSource(name, path);
  };

  const demoSource = (): Source => ({
    drive: {
      id: DEMO_DRIVE_ID,
      path: demoImagePath,
      kind: 'demo',
      vendor: null,
      model: null,
      revision: null,
      capabilities: [],
      ejectable: false,
      description: DEMO_DESCRIPTION,
    },
    probe: async () => probeMedia(await ensureDemoImage(), { sectorSize: 2048 }),
  });

  const demoOffered = (opticalCount: number): boolean =>
    config.drives.demo === 'on' || (config.drives.demo === 'auto' && config.in_checkout && opticalCount === 0);

  const discover = async (): Promise<Source[]> => {
    const cdromInfo = await readCdromInfo(procCdromInfo);
    const sources: Source[] = [];
    const add = (source: Source | null): void => {
      if (source && !sources.some((known) => known.drive.id === source.drive.id)) sources.push(source);
    };
    if (config.drives.scan_optical) {
      for (const name of await listOpticalNames(sysfsRoot)) add(await opticalSource(name, cdromInfo));
    }
    const opticalCount = sources.length;
    // Looked up at once, so an extra source whose file system hangs delays the listing once, not once per entry after it.
    const extras = await Promise.all(config.drives.extra.map(async (configured) => ({ configured, checked: await lookUpExtra(configured) })));
    for (const { configured, checked } of extras) add(await extraSource(configured, checked, cdromInfo));
    if (demoOffered(opticalCount)) add(demoSource());
    const owned = deps.node === undefined ? sources : sources.map((source) => ownedBy(deps.node as string, source));
    listed = new Map(owned.map((source) => [source.drive.id, source]));
    return owned;
  };

  const find = async (id: string): Promise<Source> => {
    const sources = await discover();
    const source = sources.find((candidate) => candidate.drive.id === id);
    if (!source) {
      const known = sources.map((candidate) => candidate.drive.id);
      const listing = known.length > 0 ? `known devices: ${known.join(', ')}` : 'no devices are available';
      throw new NotFoundError('unknown_device', `unknown device "${id}" (${listing})`, { device: id, known });
    }
    return source;
  };

  return {
    async list() {
      return (await discover()).map((source) => source.drive);
    },
    async get(id) {
      return (await find(id)).drive;
    },
    async probe(id) {
      const source = listed.get(id) ?? (await find(id));
      const timeout = (stage: FlightStage): UnavailableError => {
        const seconds = Math.round(probeTimeoutMs / 100) / 10;
        if (stage === 'running') {
          return new UnavailableError('drive_not_responding', `${source.drive.id} did not answer within ${seconds} s`, { device: source.drive.id });
        }
        const stuck = [...probes.running(), ...extraChecks.running()];
        return new UnavailableError(
          'probe_backlog',
          `${source.drive.id} could not be checked within ${seconds} s: drives that do not answer (${stuck.join(', ')}) hold every probe`,
          { device: source.drive.id, stuck },
        );
      };
      return probes.run(source.drive.id, source.probe, probeTimeoutMs, timeout);
    },
    pending(id) {
      return probes.pending(id);
    },
    async eject(id) {
      const { drive } = await find(id);
      if (drive.kind !== 'optical') {
        const what = { demo: 'the demo disc, an image file', file: 'an image file', block: 'a block device without a tray' }[drive.kind];
        throw new ConflictError('not_ejectable', `${drive.id} cannot be ejected: it is ${what}`, { device: drive.id, kind: drive.kind });
      }
      if (!drive.ejectable) {
        throw new ConflictError('not_ejectable', `${drive.id} cannot be ejected: the drive reports that it cannot open its tray`, {
          device: drive.id,
          kind: drive.kind,
        });
      }
      await ejector(drive.path);
    },
    async resolveDemoImage() {
      const sources = await discover();
      return sources.some((source) => source.drive.kind === 'demo') ? ensureDemoImage() : null;
    },
  };
}

/** A source of a cluster node: its drive named by the node (clusterDriveId). */
function ownedBy(node: string, source: Source): Source {
  return { ...source, drive: { ...source.drive, id: clusterDriveId(node, source.drive.id), node } };
}

/** Reads before writes, each in a fixed order, without duplicates from the two sources. */
const CAPABILITY_ORDER = ['cd', 'dvd', 'bd', 'mrw'];
function orderCapabilities(capabilities: string[]): string[] {
  const unique = [...new Set(capabilities)];
  const rank = (capability: string): number => {
    const index = CAPABILITY_ORDER.indexOf(capability);
    return index === -1 ? CAPABILITY_ORDER.length : index;
  };
  // Code-point order, not localeCompare: the listing must not depend on the server's locale.
  return unique.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}
