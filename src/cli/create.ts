import { mkdir, statfs } from 'node:fs/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { allocateImagePath, imageNameFromLabel, resolveOutputFile, validateImageName } from '../archive/naming.js';
import { imagingOptionsFrom } from '../config/imaging-options.js';
import { HASH_ALGORITHMS, type HashAlgorithm, READ_ATTEMPTS } from '../config/schema.js';
import type { Drive, MediaInfo } from '../drives/types.js';
import { UnavailableError, ValidationError } from '../errors.js';
import { runImaging } from '../imaging/engine.js';
import type { ImagingResult } from '../imaging/types.js';
import { type CliContext, type GlobalOptions, createCliContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes, formatDuration } from './format.js';
import { createProgressReporter } from './progress.js';

/** Engine stops that leave a resumable .part and map behind. */
const RESUMABLE_STOPS = new Set(['device_gone', 'no_space', 'storage_threshold']);

interface CreateOptions {
  device: string;
  output?: string;
  name?: string;
  autoName?: boolean;
  readAttempts?: number;
  checksums?: HashAlgorithm[];
  verify: boolean;
  json?: boolean;
}

function parseReadAttempts(value: string): number {
  const { minimum, maximum } = READ_ATTEMPTS;
  if (!/^\d+$/.test(value) || Number(value) < minimum || Number(value) > maximum)
    throw new InvalidArgumentError(`expected a whole number from ${minimum} to ${maximum}`);
  return Number(value);
}

function parseChecksums(value: string): HashAlgorithm[] {
  const names = value
    .split(',')
    .map((part) => part.trim().toLowerCase())
    .filter((part) => part !== '');
  const unknown = names.filter((name) => !(HASH_ALGORITHMS as readonly string[]).includes(name));
  if (names.length === 0 || unknown.length > 0) throw new InvalidArgumentError(`expected a comma-separated list of ${HASH_ALGORITHMS.join(', ')}`);
  return [...new Set(names)] as HashAlgorithm[];
}

/** Accepts a drive id, or the device path of a drive disk2iso discovered itself (never any other path). */
async function resolveDrive(ctx: CliContext, given: string): Promise<Drive> {
  if (given.startsWith('/')) {
    const match = (await ctx.drives.list()).find((drive) => drive.path === given);
    if (match) return match;
  }
  return ctx.drives.get(given);
}

function assertImageable(drive: Drive, media: MediaInfo): number {
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

/** The engine enforces the stop threshold; this only tells the user early that space is getting tight. */
async function warnWhenNearlyFull(outputDir: string, imageBytes: number, warnPercent: number): Promise<void> {
  const fs = await statfs(outputDir);
  const total = fs.blocks * fs.bsize;
  const usedAfter = total - fs.bavail * fs.bsize + imageBytes;
  if (total > 0 && (usedAfter / total) * 100 >= warnPercent) {
    process.stderr.write(
      `warning: the output file system will be ${Math.round((usedAfter / total) * 100)}% full after this image (warning threshold ${warnPercent}%)\n`,
    );
  }
}

function printSummary(result: ImagingResult): void {
  const lines = [`Image: ${result.outputPath} (${formatBytes(result.sizeBytes)})`];
  for (const [algorithm, digest] of Object.entries(result.checksums)) lines.push(`${algorithm.toUpperCase()}: ${digest}`);
  if (result.badSectors.badBytes > 0) {
    lines.push(`Unreadable: ${formatBytes(result.badSectors.badBytes)} in ${result.badSectors.badAreas} areas (zero-filled; map: ${result.mapPath})`);
  }
  if (result.verified !== null) lines.push(`Verification: ${result.verified ? 'passed' : 'FAILED'}`);
  lines.push(
    `Time: ${formatDuration(result.timings.copySeconds + result.timings.hashSeconds + result.timings.verifySeconds)}${result.resumed ? ' (resumed)' : ''}`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

export function registerCreateCommand(program: Command): void {
  program
    .command('create')
    .description('image a disc now, without the service (resumes when run again with the same output)')
    .requiredOption('--device <id>', 'drive id from `disk2iso devices` (or its device path)')
    .option('--output <file.iso>', 'image file, inside the output directory (storage.output_dir)')
    .option('--name <name>', 'image name (default: the disc volume label)')
    .option('--auto-name', 'name the image after the volume label (the default without --name/--output)')
    .option('--read-attempts <n>', 'retry passes over bad sectors', parseReadAttempts)
    .option('--checksums <list>', `checksums to compute (${HASH_ALGORITHMS.join(',')})`, parseChecksums)
    .option('--no-verify', 'skip re-reading the finished image')
    .option('--json', 'print the result as JSON')
    .action(async (options: CreateOptions, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      if (options.output && options.name) throw new ValidationError('validation_failed', 'give either --output or --name, not both', [{ field: 'name' }]);
      const drive = await resolveDrive(ctx, options.device);
      const media = await ctx.drives.probe(drive.id);
      const sizeBytes = assertImageable(drive, media);

      const outputDir = ctx.config.storage.output_dir;
      await mkdir(outputDir, { recursive: true, mode: 0o755 });
      const name = options.name ? validateImageName(options.name) : imageNameFromLabel(media.volumeLabel, drive.id);
      const outputPath = options.output ? await resolveOutputFile(outputDir, options.output) : await allocateImagePath(outputDir, name);

      await warnWhenNearlyFull(outputDir, sizeBytes, ctx.config.storage.warn_threshold_percent);
      const controller = new AbortController();
      let interrupts = 0;
      const onInterrupt = (): void => {
        interrupts += 1;
        if (interrupts > 1) process.exit(EXIT.paused);
        process.stderr.write('\nPausing: finishing the current read and saving the rescue map (Ctrl-C again to quit at once)...\n');
        controller.abort('pause');
      };
      process.on('SIGINT', onInterrupt);
      process.on('SIGTERM', onInterrupt);

      const progress = createProgressReporter(process.stderr);
      const resumeHint = `disk2iso create --device ${drive.id} --output ${outputPath}`;
      let result: ImagingResult;
      try {
        result = await runImaging({
          source: { path: drive.path, sizeBytes, sectorSize: media.logicalSectorSize },
          outputPath,
          options: imagingOptionsFrom(ctx.config, { readAttempts: options.readAttempts, checksums: options.checksums, verify: options.verify }),
          metadata: {
            name: options.output ? undefined : name,
            label: media.volumeLabel,
            device: { id: drive.id, path: drive.path, vendor: drive.vendor, model: drive.model },
            media,
            created_by: 'cli',
          },
          signal: controller.signal,
          onProgress: (update) => progress.update(update),
          onLog: (level, message) => {
            progress.done();
            process.stderr.write(`${level}: ${message}\n`);
          },
        });
      } catch (error) {
        if (error instanceof UnavailableError && RESUMABLE_STOPS.has(error.code)) {
          progress.done();
          process.stderr.write(`disk2iso: ${error.message}\nThe partial image and its rescue map are kept. Once that is fixed, resume with: ${resumeHint}\n`);
          process.exitCode = EXIT.failed;
          return;
        }
        throw error;
      } finally {
        progress.done();
        process.off('SIGINT', onInterrupt);
        process.off('SIGTERM', onInterrupt);
      }

      if (options.json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      if (result.outcome === 'paused') {
        process.stderr.write(`Paused. Rescue map saved to ${result.mapPath}.\nTo resume: ${resumeHint}\n`);
        process.exitCode = EXIT.paused;
        return;
      }
      if (!options.json) printSummary(result);
      if (ctx.config.storage.delete_source_on_success && drive.ejectable && result.badSectors.badBytes === 0 && result.verified !== false) {
        await ctx.drives.eject(drive.id);
      }
      if (result.verified === false) {
        process.stderr.write('disk2iso: the image does not match the checksums computed while reading\n');
        process.exitCode = EXIT.failed;
      } else if (result.badSectors.badBytes > 0) {
        process.stderr.write(
          `disk2iso: ${formatBytes(result.badSectors.badBytes)} could not be read (zero-filled). ${result.mapPath} lists them; after cleaning the disc, GNU ddrescue can retry just those: ddrescue -d -r3 ${drive.path} ${result.outputPath} ${result.mapPath}\n`,
        );
        process.exitCode = EXIT.damaged;
      }
    });
}
