import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, InvalidArgumentError } from 'commander';
import type { ArchiveRecord } from '../archive/model.js';
import { toArchiveView } from '../archive/service.js';
import { HASH_ALGORITHMS, type HashAlgorithm, READ_ATTEMPTS } from '../config/schema.js';
import type { Drive } from '../drives/types.js';
import { NotFoundError, ValidationError } from '../errors.js';
import { type CliOutput, cliOutput } from '../jobs/intake.js';
import { leaseHolderGone } from '../jobs/lease-holder.js';
import { type JobRecord, isActive } from '../jobs/model.js';
import { toJobView } from '../jobs/view.js';
import { type CliContext, type GlobalOptions, createCliContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes, formatDuration } from './format.js';
import { unixUser } from './local-auth.js';
import { type LocalService, withLocalService } from './local-service.js';
import { type ProgressLine, createProgressReporter } from './progress.js';

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

/** How often a job the service runs is looked at; the service records progress once a second. */
const FOLLOW_INTERVAL_MS = 500;

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

function progressOf(job: JobRecord): ProgressLine {
  return {
    phase: job.phase ?? 'copying',
    percent: job.progress,
    bytesDone: job.bytesDone,
    bytesTotal: job.sizeBytes ?? 0,
    rateBps: job.speedBps ?? 0,
    etaSeconds: job.etaSeconds,
    badBytes: job.badBytes,
    errorCount: job.errorCount,
  };
}

/** Who runs the job, and the job as it stands before it runs. */
type Plan = { runsHere: true; job: JobRecord; why: string } | { runsHere: false; job: JobRecord; why: string };

/**
 * Picks up the job this command stands for: the unfinished job writing the same --output (run the
 * command again to continue it), else a new one from the intake. The running service takes it when
 * there is one and the file lies in its output directory; otherwise this process holds it under its
 * own lease, which keeps the service and every other `create` off the drive until it ends.
 */
async function takeUp(local: LocalService, drive: Drive, output: CliOutput | null, options: CreateOptions): Promise<Plan> {
  const { queue, jobs } = local;
  const service = await local.runningService();
  const lease = { workerId: local.workerId, leaseMs: local.leaseMs, holder: local.holder };
  const serviceTakes = service !== null && (output === null || output.inOutputDir);
  const why =
    service === null
      ? 'no disk2iso service is running'
      : serviceTakes
        ? `the service (pid ${service.holder.pid} on ${service.holder.host}) runs it`
        : `${output?.file} lies outside the service's output directory`;

  const earlier = output === null ? null : await jobs.latestForOutput(output.file);
  if (earlier !== null && earlier.status !== 'completed') {
    if (isActive(earlier.status)) return { runsHere: false, job: earlier, why: `job ${earlier.id} is already writing ${earlier.outputFile}` };
    const move = earlier.deviceId === drive.id ? {} : { drive: { id: drive.id, path: drive.path } };
    if (serviceTakes) return { runsHere: false, job: await queue.requeue(earlier.id, move), why };
    return { runsHere: true, job: await queue.claimJob(earlier.id, local.workerId, { ...lease, ...move }), why };
  }

  // Checked before the probe: a drive that is imaging must not be read by a second process.
  await local.assertDriveFree(drive);

  const plan = await local.intake.plan({
    device: drive.id,
    name: output === null ? options.name : undefined,
    outputFile: output?.file,
    // --no-verify is a choice; without it the setting decides.
    options: { read_attempts: options.readAttempts, checksums: options.checksums, verify: options.verify ? undefined : false },
    createdBy: `cli:${unixUser()}`,
  });
  const job = await queue.enqueue(serviceTakes ? plan.job : { ...plan.job, claim: lease });
  await jobs.appendLog(
    job.id,
    'info',
    `queued by disk2iso create: ${drive.description} (${drive.id}), ${plan.media.volumeLabel ?? 'no label'}, ${plan.job.sizeBytes} bytes -> ${job.outputFile}`,
  );
  return { runsHere: !serviceTakes, job, why };
}

/** Follows a job another process runs, printing its log and progress, until it leaves the queue and stops. */
async function follow(
  local: LocalService,
  jobId: string,
  onProgress: (job: JobRecord) => void,
  onLog: (level: string, message: string) => void,
): Promise<void> {
  let lastLogId = 0;
  let waitingSaid = false;
  for (;;) {
    const job = await local.queue.get(jobId);
    if (job === null) throw new NotFoundError('job_not_found', `job ${jobId} was removed`);
    const { items } = await local.jobs.listLogs(jobId, { afterId: lastLogId, limit: 1000 });
    for (const line of items) {
      onLog(line.level, line.message);
      lastLogId = line.id;
    }
    if (isActive(job.status)) onProgress(job);
    else if (job.status === 'queued' && !waitingSaid) {
      onLog('info', `waiting in the service's queue (position ${(await local.jobs.queuePosition(jobId)) ?? '?'})`);
      waitingSaid = true;
    } else if (job.status !== 'queued') return;
    await sleep(FOLLOW_INTERVAL_MS);
  }
}

function printSummary(job: JobRecord, archive: ArchiveRecord | null): void {
  const lines = [`Image: ${job.outputFile} (${formatBytes(archive?.sizeBytes ?? job.bytesDone)})`];
  for (const [algorithm, digest] of Object.entries(archive?.checksums ?? {})) lines.push(`${algorithm.toUpperCase()}: ${digest}`);
  if (job.badBytes > 0) lines.push(`Unreadable: ${formatBytes(job.badBytes)} (zero-filled; map: ${job.outputFile}.map)`);
  if (archive?.lastVerifiedOk !== null && archive?.lastVerifiedOk !== undefined) lines.push(`Verification: ${archive.lastVerifiedOk ? 'passed' : 'FAILED'}`);
  if (archive) lines.push(`Archive: ${archive.id}`);
  const seconds = job.startedAt && job.finishedAt ? (Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000 : null;
  lines.push(`Time: ${formatDuration(seconds)}${job.attempts > 1 ? ' (resumed)' : ''}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** Says how the job ended and sets the exit code. */
function report(job: JobRecord, archive: ArchiveRecord | null, json: boolean, resumeHint: string): void {
  if (json) process.stdout.write(`${JSON.stringify({ job: toJobView(job, null), archive: archive && toArchiveView(archive) }, null, 2)}\n`);
  switch (job.status) {
    case 'completed':
      if (!json) printSummary(job, archive);
      if (archive?.lastVerifiedOk === false) {
        process.stderr.write('disk2iso: the image does not match the checksums computed while reading\n');
        process.exitCode = EXIT.failed;
      } else if (job.badBytes > 0) {
        process.stderr.write(
          `disk2iso: ${formatBytes(job.badBytes)} could not be read (zero-filled). ${job.outputFile}.map lists them; after cleaning the disc, read them again with "Retry the bad areas" on the job's page, or: ddrescue -d -r3 ${job.devicePath} ${job.outputFile} ${job.outputFile}.map\n`,
        );
        process.exitCode = EXIT.damaged;
      }
      return;
    case 'paused':
      if (job.errorMessage !== null) {
        process.stderr.write(`disk2iso: ${job.errorMessage}\nThe partial image and its rescue map are kept. Once that is fixed, resume with: ${resumeHint}\n`);
        process.exitCode = EXIT.failed;
        return;
      }
      process.stderr.write(`Paused. Rescue map saved to ${job.outputFile}.map.\nTo resume: ${resumeHint}\n`);
      process.exitCode = EXIT.paused;
      return;
    case 'failed':
      process.stderr.write(
        `disk2iso: ${job.errorMessage ?? 'the job failed'}\nThe partial image and its rescue map are kept. Once that is fixed, resume with: ${resumeHint}\n`,
      );
      process.exitCode = EXIT.failed;
      return;
    default:
      process.stderr.write(`disk2iso: job ${job.id} was ${job.status}\n`);
      process.exitCode = EXIT.failed;
  }
}

async function create(ctx: CliContext, options: CreateOptions): Promise<void> {
  if (options.output && options.name) throw new ValidationError('validation_failed', 'give either --output or --name, not both', [{ field: 'name' }]);
  await withLocalService(ctx, async (local) => {
    const drive = await local.intake.resolveDrive(options.device);
    const output = options.output === undefined ? null : await cliOutput(local.config, options.output);
    // A job whose process died (kill -9, power loss) is free again before anything looks at the drive.
    await local.queue.recoverExpired({ holderGone: leaseHolderGone });
    const plan = await takeUp(local, drive, output, options);
    const jobId = plan.job.id;
    process.stderr.write(
      plan.runsHere
        ? `disk2iso: imaging here as job ${jobId}, since ${plan.why}; ${drive.id} is locked for it. Ctrl-C pauses.\n`
        : `disk2iso: following job ${jobId}: ${plan.why}. Ctrl-C pauses the job.\n`,
    );

    const progress = createProgressReporter(process.stderr);
    const onLog = (level: string, message: string): void => {
      progress.done();
      process.stderr.write(`${level}: ${message}\n`);
    };
    let interrupts = 0;
    const onInterrupt = (): void => {
      interrupts += 1;
      if (interrupts > 1) process.exit(EXIT.paused);
      progress.done();
      process.stderr.write('\nPausing: finishing the current read and saving the rescue map (Ctrl-C again to stop waiting)...\n');
      local.queue.requestStop(jobId, 'pause').then(
        () => local.events.emit('job.stop_requested', { jobId, action: 'pause' }),
        (error: unknown) => process.stderr.write(`disk2iso: could not pause job ${jobId}: ${String(error)}\n`),
      );
    };
    process.on('SIGINT', onInterrupt);
    process.on('SIGTERM', onInterrupt);
    try {
      if (plan.runsHere) {
        const offUpdates = local.events.on('job.updated', ({ job }) => {
          if (job.id === jobId && isActive(job.status)) progress.update(progressOf(job));
        });
        const offLogs = local.events.on('job.log', (line) => {
          if (line.jobId === jobId) onLog(line.level, line.message);
        });
        try {
          await local.runner().runClaimed(plan.job);
        } finally {
          offUpdates();
          offLogs();
        }
      } else {
        await follow(local, jobId, (job) => progress.update(progressOf(job)), onLog);
      }
    } finally {
      progress.done();
      process.off('SIGINT', onInterrupt);
      process.off('SIGTERM', onInterrupt);
    }

    const final = await local.queue.get(jobId);
    if (final === null) throw new NotFoundError('job_not_found', `job ${jobId} was removed`);
    const archive = final.archiveId === null ? null : await local.archives.get(final.archiveId);
    report(final, archive, options.json === true, `disk2iso create --device ${final.deviceId} --output ${final.outputFile}`);
  });
}

export function registerCreateCommand(program: Command): void {
  program
    .command('create')
    .description(
      'image a disc as a job: the running service takes it when there is one, else this command images it itself; either way it lands in the archive (run it again with the same --output to resume)',
    )
    .requiredOption('--device <device>', 'drive id or device path from `disk2iso devices` (sr0, /dev/sr0)')
    .option(
      '--output <file.iso>',
      'image file: a relative path lies inside the output directory (storage.output_dir); an absolute path may be anywhere you may write, and is then imaged by this command itself',
    )
    .option('--name <name>', 'image name (default: the disc volume label)')
    .option('--auto-name', 'name the image after the volume label (the default without --name/--output)')
    .option('--read-attempts <n>', 'retry passes over bad sectors', parseReadAttempts)
    .option('--checksums <list>', `checksums to compute (${HASH_ALGORITHMS.join(',')})`, parseChecksums)
    .option('--no-verify', 'skip re-reading the finished image')
    .option('--json', 'print the job and its archive entry as JSON')
    .action(async (options: CreateOptions, command: Command) => {
      await create(createCliContext(command.optsWithGlobals<GlobalOptions>()), options);
    });
}
