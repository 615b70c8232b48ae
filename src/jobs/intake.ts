import { access, constants, mkdir, realpath } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { allocateImagePath, imageNameFromLabel, isStrictlyInside, resolveOutputFile, validateImageName } from '../archive/naming.js';
import type { Config, HashAlgorithm, Priority } from '../config/schema.js';
import type { Drive, MediaInfo } from '../drives/types.js';
import { UnavailableError, ValidationError, errnoCode } from '../errors.js';
import type { EnqueueInput } from './queue.js';

/**
 * The one way into imaging. The API, the web pages and the CLI all decide here which drive is
 * meant, whether its disc can be imaged, the image's name and file, the options (the settings,
 * with what the person chose on top), what is recorded of the disc, and when a disc is ejected.
 */

/** The drives a name can mean: what the drive service discovered (or its cache of that, for requests). */
export interface DriveDirectory {
  list(): Promise<Drive[]>;
  /** NotFoundError `unknown_device`, naming the known drives, for anything that is not a listed id. */
  get(id: string): Promise<Drive>;
}

export interface JobChoices {
  read_attempts?: number | undefined;
  verify?: boolean | undefined;
  checksums?: HashAlgorithm[] | undefined;
  priority?: Priority | undefined;
  /** Open the tray once the image is complete and verified; default: the setting storage.delete_source_on_success. */
  eject?: boolean | undefined;
}

interface IntakeRequest {
  /** A drive id (`sr0`) or the device path of a discovered drive (`/dev/sr0`, or a link to it such as `/dev/cdrom`). */
  device: string;
  /** The image's name; default: the volume label. Ignored with `outputFile`. */
  name?: string | undefined;
  /** A file already checked by `cliOutput`; default: NAME.iso in the output directory, never one taken. */
  outputFile?: string | undefined;
  options?: JobChoices | undefined;
  createdBy: string | null;
}

export interface IntakeDeps {
  config: Config;
  drives: DriveDirectory;
  /** The disc in a drive: what the service knows without touching the drive (requests), or a fresh probe (the CLI). */
  media(driveId: string): Promise<MediaInfo>;
  /** Output files of unfinished jobs: a new image never takes one. */
  reservedOutputs(): Promise<ReadonlySet<string>>;
}

interface JobPlan {
  drive: Drive;
  media: MediaInfo;
  job: EnqueueInput;
}

export interface Intake {
  resolveDrive(given: string): Promise<Drive>;
  /** Everything a new job is made of; nothing is stored yet. */
  plan(request: IntakeRequest): Promise<JobPlan>;
}

/** Device paths are looked up through their links only under /dev: resolving a node there reads no drive. */
const DEVICE_ROOT = '/dev/';

export async function resolveDrive(drives: DriveDirectory, given: string): Promise<Drive> {
  const listed = await drives.list();
  const byId = listed.find((drive) => drive.id === given);
  if (byId) return byId;
  if (isAbsolute(given)) {
    const byPath = listed.find((drive) => drive.path === given);
    if (byPath) return byPath;
    if (given.startsWith(DEVICE_ROOT)) {
      const real = await realpath(given).catch(() => null);
      const linked = real === null ? undefined : listed.find((drive) => drive.path === real);
      if (linked) return linked;
    }
  }
  return drives.get(given);
}

/** Refuses a disc that cannot be imaged (what canBeImaged tells), saying why; returns the image's size. */
export function assertImageable(drive: Drive, media: MediaInfo): number {
  if (!media.present) throw new UnavailableError('no_media', `no disc in ${drive.id}`);
  if (media.kind === 'blank') throw new UnavailableError('blank_media', `the disc in ${drive.id} is blank`);
  if (media.kind === 'audio') {
    throw new UnavailableError(
      'unsupported_media',
      `the disc in ${drive.id} is an audio CD; imaging audio tracks needs a CD ripping method, which this version does not have`,
    );
  }
  if (media.imageSizeBytes === null || media.imageSizeBytes <= 0) throw new UnavailableError('unknown_size', `cannot tell the size of the disc in ${drive.id}`);
  return media.imageSizeBytes;
}

/**
 * A disc is ejected only when its image is complete (every sector read) and verified against the
 * checksums computed while reading, and only when the job (a drive's automation profile) or else
 * the settings ask for it: the disc is the only other copy until then.
 */
export function shouldEject(config: Config, drive: Drive, outcome: { badBytes: number; verified: boolean | null; requested?: boolean | undefined }): boolean {
  const asked = outcome.requested ?? config.storage.delete_source_on_success;
  return asked && drive.ejectable && outcome.badBytes === 0 && outcome.verified === true;
}

/** True when `file` lies in the service's output directory (after symlinks): the only place the service writes images. */
export async function insideOutputDir(config: Config, file: string): Promise<boolean> {
  try {
    const [dir, parent] = await Promise.all([realpath(config.storage.output_dir), realpath(dirname(file))]);
    return parent === dir || isStrictlyInside(dir, parent);
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return false;
    throw error;
  }
}

export interface CliOutput {
  file: string;
  /** Inside the service's output directory, so the service may write it; otherwise only the CLI's own run does. */
  inOutputDir: boolean;
}

/**
 * The file a `create --output` names. A relative path lies inside the output directory and may not
 * leave it. An absolute path may be anywhere the person running the CLI may write (root's
 * `--output /backup/emergency.iso`); its folder is made when missing, the file must end in .iso
 * under a valid image name.
 */
export async function cliOutput(config: Config, given: string): Promise<CliOutput> {
  if (!isAbsolute(given)) return { file: await resolveOutputFile(config.storage.output_dir, given), inOutputDir: true };
  const file = given.toLowerCase().endsWith('.iso') ? given : `${given}.iso`;
  validateImageName(basename(file));
  if (await insideOutputDir(config, file)) return { file: await resolveOutputFile(config.storage.output_dir, file), inOutputDir: true };
  const folder = dirname(file);
  try {
    await mkdir(folder, { recursive: true, mode: 0o755 });
    await access(folder, constants.W_OK);
  } catch (error) {
    const code = errnoCode(error);
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
      throw new ValidationError('output_unwritable', `you may not write to ${folder} (${code})`, [{ field: 'output', reason: 'not writable' }]);
    }
    if (code === 'ENOTDIR' || code === 'EEXIST') {
      throw new ValidationError('invalid_output', `${folder} is not a folder`, [{ field: 'output', reason: 'not a folder' }]);
    }
    throw error;
  }
  return { file: join(await realpath(folder), basename(file)), inOutputDir: false };
}

export function createIntake(deps: IntakeDeps): Intake {
  const { config } = deps;
  return {
    resolveDrive: (given) => resolveDrive(deps.drives, given),

    async plan(request) {
      const drive = await resolveDrive(deps.drives, request.device);
      const media = await deps.media(drive.id);
      const sizeBytes = assertImageable(drive, media);
      let outputFile = request.outputFile;
      let name: string;
      if (outputFile === undefined) {
        name = request.name === undefined ? imageNameFromLabel(media.volumeLabel, drive.id) : validateImageName(request.name);
        await mkdir(config.storage.output_dir, { recursive: true, mode: 0o755 });
        outputFile = await allocateImagePath(config.storage.output_dir, name, await deps.reservedOutputs());
      } else {
        name = validateImageName(basename(outputFile));
      }
      const choices = request.options ?? {};
      return {
        drive,
        media,
        job: {
          name,
          deviceId: drive.id,
          devicePath: drive.path,
          ...(drive.node === undefined ? {} : { nodeId: drive.node }),
          outputFile,
          priority: choices.priority ?? config.imaging.priority,
          sizeBytes,
          createdBy: request.createdBy,
          options: {
            read_attempts: choices.read_attempts ?? config.imaging.read_attempts,
            verify: choices.verify ?? config.imaging.verify,
            checksums: choices.checksums ?? [...config.imaging.checksums],
            ...(choices.eject === undefined ? {} : { eject: choices.eject }),
            // What the disc looked like when the job was made, so a later run can tell it is the same disc.
            disc: {
              label: media.volumeLabel,
              volume_id: media.volumeId,
              created_at: media.createdAt,
              kind: media.kind,
              media_type: media.mediaType,
              file_systems: media.fileSystems,
              size_bytes: sizeBytes,
              sector_size: media.logicalSectorSize,
            },
          },
        },
      };
    },
  };
}
