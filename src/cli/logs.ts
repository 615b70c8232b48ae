import { setTimeout as sleep } from 'node:timers/promises';
import { type Command, InvalidArgumentError } from 'commander';
import { LOG_LEVELS, type LogLevel, type LogRecord } from '../log.js';
import { type GlobalOptions, createCliContext } from './context.js';
import { withLocalService } from './local-service.js';

interface LogsOptions {
  follow?: boolean;
  level: LogLevel;
  lines: number;
  job?: string;
}

/** New lines are looked for this often; the service writes them as they happen, from any process. */
const FOLLOW_INTERVAL_MS = 1000;

function parseLevel(value: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${LOG_LEVELS.join(', ')}`);
  return value as LogLevel;
}

function parseLines(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 10_000) throw new InvalidArgumentError('expected a whole number from 1 to 10000');
  return Number(value);
}

/** One line per entry, so `| logger -t disk2iso` or grep sees one record per line. */
function format(record: LogRecord): string {
  const job = record.jobId === null ? '' : ` [${record.jobId}]`;
  return `${record.at} ${record.level} ${record.source}${job}: ${record.message.replace(/[\r\n]+/g, ' ')}\n`;
}

export function registerLogsCommand(program: Command): void {
  program
    .command('logs')
    .description("the service's log (jobs, drives, settings, sign-ins …), oldest first")
    .option('-f, --follow', 'keep printing new lines as they come, until Ctrl-C')
    .option('--level <level>', `this level and more severe ones (${LOG_LEVELS.join(', ')})`, parseLevel, 'info')
    .option('-n, --lines <n>', 'how many of the latest lines to print first', parseLines, 50)
    .option('--job <id>', "only one job's lines")
    .action(async (options: LogsOptions, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      // A reader that went away (`| head`, a stopped logger) ends the command quietly.
      process.stdout.on('error', () => process.exit(0));
      await withLocalService(ctx, async (local) => {
        const filter = { minLevel: options.level, ...(options.job === undefined ? {} : { jobId: options.job }) };
        const { items: latest } = await local.logs.list({ ...filter, order: 'desc', limit: options.lines });
        let lastId = 0;
        for (const record of latest.reverse()) {
          process.stdout.write(format(record));
          lastId = record.id;
        }
        if (!options.follow) return;
        if (lastId === 0) lastId = (await local.logs.list({ order: 'desc', limit: 1 })).items[0]?.id ?? 0;
        let stopped = false;
        const stop = (): void => {
          stopped = true;
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        while (!stopped) {
          const { items } = await local.logs.list({ ...filter, afterId: lastId, order: 'asc', limit: 1000 });
          for (const record of items) {
            process.stdout.write(format(record));
            lastId = record.id;
          }
          if (items.length < 1000) await sleep(FOLLOW_INTERVAL_MS);
        }
      });
    });
}
