import type { Command } from 'commander';
import { type MigrateReport, migrateToPostgres } from '../db/copy-to-postgres.js';
import { databaseFile } from '../db/database.js';
import { redactedUrl } from '../db/postgres.js';
import { ConflictError, ValidationError } from '../errors.js';
import { pathExists } from '../imaging/output-state.js';
import { leaseHolderGone } from '../jobs/lease-holder.js';
import { type GlobalOptions, createCliContext } from './context.js';

function formatReport(report: MigrateReport, shownUrl: string): string {
  const width = Math.max(...report.tables.map((check) => check.table.length), 'table'.length);
  const lines = [`${'table'.padEnd(width)}  ${'rows'.padStart(9)}  checksum (sha-256 of the rows, both sides)`];
  for (const check of report.tables) lines.push(`${check.table.padEnd(width)}  ${String(check.targetRows).padStart(9)}  ${check.targetChecksum.slice(0, 16)}`);
  for (const derived of report.derived) lines.push(`${derived.table.padEnd(width)}  ${String(derived.rows).padStart(9)}  (rebuilt by PostgreSQL)`);
  lines.push(`Copied ${report.tables.reduce((sum, check) => sum + check.targetRows, 0)} rows into ${shownUrl}; every table's count and checksum match.`);
  return `${lines.join('\n')}\n`;
}

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description("copy the embedded database into an empty PostgreSQL database (the cluster mode's), checked table by table; the service must be stopped")
    .requiredOption('--to <postgres-url>', 'postgres://user:password@host:port/database of an empty database (PostgreSQL 15 or newer)')
    .action(async (options: { to: string }, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      let parsed: URL | undefined;
      try {
        parsed = new URL(options.to);
      } catch {
        parsed = undefined;
      }
      if (parsed === undefined || !['postgres:', 'postgresql:'].includes(parsed.protocol)) {
        throw new ValidationError('validation_failed', `--to needs a postgres://user:password@host:port/database URL, not ${redactedUrl(options.to)}`, {
          fields: ['to'],
        });
      }
      const configured = ctx.config.database.url;
      if (configured !== null) {
        throw new ConflictError(
          'migrate_already_postgres',
          `database.url already keeps the state in PostgreSQL (${redactedUrl(configured)}): migrate copies the embedded database of the data directory, so run it without database.url set, then set database.url to the target`,
          { url: redactedUrl(configured) },
        );
      }
      const file = databaseFile(ctx.config.data_dir);
      if (!(await pathExists(file)))
        throw new ValidationError('validation_failed', `${file} does not exist: there is nothing to migrate`, { fields: ['data_dir'] });
      const report = await migrateToPostgres({ sqliteFile: file, url: options.to, staleMs: ctx.config.jobs.lease_seconds * 1000, holderGone: leaseHolderGone });
      process.stdout.write(formatReport(report, redactedUrl(options.to)));
    });
}
