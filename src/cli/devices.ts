import type { Command } from 'commander';
import type { Drive, MediaInfo } from '../drives/types.js';
import { errorMessage } from '../errors.js';
import { resolveDrive } from '../jobs/intake.js';
import { canBeImaged } from '../media/probe.js';
import { type CliContext, type GlobalOptions, createCliContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes, printTable } from './format.js';
import { withLocalService } from './local-service.js';

interface DriveWithMedia {
  drive: Drive;
  media: MediaInfo | null;
  error: string | null;
}

async function listWithMedia(ctx: CliContext): Promise<DriveWithMedia[]> {
  const drives = await ctx.drives.list();
  return Promise.all(
    drives.map(async (drive) => {
      try {
        return { drive, media: await ctx.drives.probe(drive.id), error: null };
      } catch (error) {
        return { drive, media: null, error: errorMessage(error) };
      }
    }),
  );
}

function mediaSummary(entry: DriveWithMedia): string {
  if (entry.error) return `error: ${entry.error}`;
  const media = entry.media;
  if (!media?.present) return 'no disc';
  const size = media.imageSizeBytes === null ? 'size unknown' : formatBytes(media.imageSizeBytes);
  const label = media.volumeLabel ? `"${media.volumeLabel}"` : 'no label';
  return `${media.kind}${media.mediaType ? ` ${media.mediaType}` : ''}, ${label}, ${size}`;
}

export function registerDevicesCommand(program: Command): void {
  program
    .command('devices')
    .description('list drives and image sources with the media in them')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      const entries = await listWithMedia(ctx);
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ devices: entries.map(({ drive, media, error }) => ({ ...drive, media, error })) }, null, 2)}\n`);
        return;
      }
      if (entries.length === 0) {
        process.stdout.write('No drives found. Add block devices or image files with drives.extra (DISK2ISO_EXTRA_DEVICES).\n');
        return;
      }
      printTable(
        ['ID', 'PATH', 'DRIVE', 'MEDIA'],
        entries.map((entry) => [entry.drive.id, entry.drive.path, entry.drive.description, mediaSummary(entry)]),
      );
    });

  const device = program.command('device').description('one drive: check for media, eject');
  device
    .command('has-media')
    .argument('<device>', 'drive id or device path (see `disk2iso devices`), e.g. sr0 or /dev/sr0')
    .description('exit 0 when the drive holds a disc that can be imaged, 1 when not (no disc, blank, audio), 2 for an unknown device')
    .action(async (given: string, _options: unknown, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      const drive = await resolveDrive(ctx.drives, given);
      process.exitCode = canBeImaged(await ctx.drives.probe(drive.id)) ? EXIT.ok : EXIT.failed;
    });
  device
    .command('eject')
    .argument('<device>', 'drive id or device path (see `disk2iso devices`), e.g. sr0 or /dev/sr0')
    .description('open the drive tray (refused while a job reads from the drive)')
    .action(async (given: string, _options: unknown, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      const drive = await resolveDrive(ctx.drives, given);
      await withLocalService(ctx, (local) => local.assertDriveFree(drive));
      await ctx.drives.eject(drive.id);
      process.stdout.write(`Ejected ${drive.id}.\n`);
    });
}
