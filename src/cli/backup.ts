import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { databaseFile, embeddedOnly, openDatabase } from '../db/database.js';
import { redactedUrl } from '../db/postgres.js';
import { ConflictError } from '../errors.js';
import { pathExists } from '../imaging/output-state.js';
import { currentLeaseHolder, leaseHolderGone } from '../jobs/lease-holder.js';
import type { LeaseHolder } from '../jobs/model.js';
import { createBackup, restoreBackup } from '../system/backup.js';
import { type GlobalOptions, createCliContext } from './context.js';
import { formatBytes } from './format.js';
import { withLocalService } from './local-service.js';

/** How long a stopping service may take to pause its jobs and close before restore gives up. */
const STOP_WAIT_MS = 120_000;

/** Asks the service to stop as systemd would (SIGTERM: running jobs pause, maps saved) and waits until it is gone. */
async function stopService(holder: LeaseHolder): Promise<void> {
  const self = await currentLeaseHolder();
  if (holder.host !== self.host || holder.pidNamespace !== self.pidNamespace) {
    throw new ConflictError('service_running', `the service runs on ${holder.host} (pid ${holder.pid}), out of this command's reach; stop it there first`);
  }
  process.kill(holder.pid, 'SIGTERM');
  const deadline = Date.now() + STOP_WAIT_MS;
  while (!(await leaseHolderGone(holder))) {
    if (Date.now() > deadline) throw new ConflictError('service_running', `the service (pid ${holder.pid}) did not stop within ${STOP_WAIT_MS / 1000} s`);
    await sleep(200);
  }
}

export function registerBackupCommands(program: Command): void {
  program
    .command('backup')
    .description('back up the database (online, while jobs run), the signing key and the configuration into one .tar.gz')
    .requiredOption('--output <file.tar.gz>', 'the archive to write (mode 0600: it holds password hashes and the signing key)')
    .action(async (options: { output: string }, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      const output = resolve(options.output);
      await withLocalService(ctx, async (local) => {
        const service = await local.runningService();
        const manifest = await createBackup({ config: local.config, database: embeddedOnly(local.database), output, version: program.version() ?? 'unknown' });
        const size = manifest.files.reduce((sum, file) => sum + file.size, 0);
        process.stdout.write(
          `Backed up ${service === null ? 'the data directory (no service is running)' : `the running service's database online (pid ${service.holder.pid})`} to ${output}: ${manifest.files.map((file) => file.name).join(', ')} (${formatBytes(size)}), schema ${manifest.schema.migrations.at(-1) ?? 'empty'}.\n`,
        );
      });
    });

  program
    .command('restore')
    .description('put a backup in place of the database, signing key and configuration (the old files are kept in the backup folder)')
    .requiredOption('--input <file.tar.gz>', 'an archive made by `disk2iso backup`')
    .option('--stop-service', 'stop the running service first (SIGTERM: its jobs pause), instead of refusing')
    .action(async (options: { input: string; stopService?: boolean }, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      const configured = ctx.config.database.url;
      // A restored file would sit in the data dir unread while the service keeps its state in PostgreSQL.
      if (configured !== null) {
        throw new ConflictError(
          'backup_not_embedded',
          `The state is in PostgreSQL (${redactedUrl(configured)}): restore it with pg_restore or from a base backup; disk2iso restores only the embedded database. Nothing was changed`,
          { url: redactedUrl(configured) },
        );
      }
      const input = resolve(options.input);
      // A data directory without a database has no service; opening one would create it.
      const service = (await pathExists(databaseFile(ctx.config.data_dir))) ? await withLocalService(ctx, (local) => local.runningService()) : null;
      if (service !== null) {
        if (!options.stopService) {
          throw new ConflictError(
            'service_running',
            `the service is running (pid ${service.holder.pid}); stop it first (systemctl stop disk2iso), or give --stop-service. Nothing was changed`,
          );
        }
        await stopService(service.holder);
        process.stderr.write(`disk2iso: stopped the service (pid ${service.holder.pid}); its running jobs are paused.\n`);
      }
      const result = await restoreBackup({ config: ctx.config, input });
      // Opening it brings an older schema up to date, and proves the restored database works.
      const database = await openDatabase({ file: databaseFile(ctx.config.data_dir), backupDir: ctx.config.backup.dir });
      const schema = (await database.appliedMigrations()).at(-1);
      await database.close();
      const lines = [
        `Restored ${input} (disk2iso ${result.manifest.version}, made ${result.manifest.created_at}) into ${ctx.config.data_dir}; schema now ${schema}.`,
      ];
      if (result.configFile !== null) lines.push(`Configuration written to ${result.configFile}.`);
      if (result.previous !== null) lines.push(`The files it replaced are in ${result.previous}.`);
      lines.push(
        service === null ? 'Start the service when ready.' : 'Start the service again (systemctl start disk2iso); paused jobs resume from their maps.',
      );
      process.stdout.write(`${lines.join('\n')}\n`);
    });
}
