import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { type Command, Option } from 'commander';
import type { Config } from '../config/schema.js';
import { type Database, databaseFile } from '../db/database.js';
import { createJobRepository } from '../db/job-repository.js';
import { createSettingsRepository } from '../db/settings-repository.js';
import { UnavailableError, ValidationError, errorMessage } from '../errors.js';
import { activeJobsByDevice } from '../system/devices.js';
import { renderDataDirMetrics } from '../system/metrics.js';
import { createOutputProbe } from '../system/output-probe.js';
import { READINESS_CHECKS, type Readiness, createReadiness, probeDatabaseWrite } from '../system/readiness.js';
import { applyStoredSettings } from '../system/settings.js';
import { type GlobalOptions, createCliContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { withDatabase } from './local-auth.js';
import { type NoAnswer, type ServiceAnswer, askService, serviceAddress } from './service-client.js';

/**
 * `disk2iso metrics` and `disk2iso health`, for monitoring. Each asks the running service first (its
 * unix socket, or its host and port), and works on the data directory when none answers; stderr
 * says which it did.
 *
 * The service's GET /metrics needs a key with metrics:read (`--api-key-file`) unless this host's
 * address is in metrics.allow_addresses; without either, `metrics` computes what the database and
 * the output file system tell (a subset: no counters, drive states, HTTP or process metrics).
 * Readiness needs no credentials.
 */

interface MonitoringOptions {
  apiKeyFile?: string;
}

/** The X-API-Key header for the key in `file` (a file, so the key never shows in `ps`). */
async function apiKeyHeaders(file: string | undefined): Promise<Record<string, string>> {
  if (file === undefined) return {};
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ValidationError('invalid_api_key', `cannot read the API key file ${file}: ${errorMessage(error)}`, { file });
  }
  const key = text.trim();
  if (!/^\S+$/.test(key)) throw new ValidationError('invalid_api_key', `${file} must hold one API key and nothing else`, { file });
  return { 'x-api-key': key };
}

/** The error code of an error answer, for the message. */
function errorCodeIn(body: string): string {
  try {
    const code = (JSON.parse(body) as { error?: { code?: unknown } }).error?.code;
    return typeof code === 'string' ? ` ${code}` : '';
  } catch {
    return '';
  }
}

/** Why the service's own answer could not be used, in words. */
function whyNotTheService(config: Config, answer: ServiceAnswer | NoAnswer): string {
  const where = serviceAddress(config)?.label ?? 'the configured address';
  if (answer.reached) return `the service at ${where} answered ${answer.status}${errorCodeIn(answer.body)}`;
  if (answer.why === 'none') return `no service runs at ${where} (${answer.reason})`;
  return `the service at ${where} could not be asked (${answer.reason})`;
}

/** Runs `work` on the data directory's database with the stored settings applied, as the service sees them. Never creates a database. */
async function withDataDir<T>(config: Config, work: (database: Database) => Promise<T>): Promise<T> {
  const file = databaseFile(config.data_dir);
  if (config.database.url === null && !existsSync(file)) {
    throw new ValidationError('database_open_failed', `no database at ${file}: is this the data directory (--data-dir, DISK2ISO_DATA_DIR)?`, { file });
  }
  return withDatabase(config, async (database) => {
    const stored = await createSettingsRepository(database).list();
    // A stored value the service ignores (it logs why at each start) is ignored here alike.
    await applyStoredSettings(config, Object.fromEntries(stored.map((setting) => [setting.key, setting.value])), () => undefined);
    return work(database);
  });
}

/** The readiness checks run here, on the data directory: the job runner's fails, since no service runs. */
async function checkDataDir(config: Config, why: string): Promise<Readiness> {
  const check = (writeDatabase: () => Promise<void>): Promise<Readiness> =>
    createReadiness({
      config,
      output: createOutputProbe(() => config.storage.output_dir),
      writeDatabase,
      checkRunner: () => {
        throw new UnavailableError('service_not_running', `no job runner: ${why}`);
      },
    })();
  try {
    return await withDataDir(config, (database) => check(() => probeDatabaseWrite(database)));
  } catch (error) {
    return check(() => {
      throw new UnavailableError('database_unavailable', errorMessage(error));
    });
  }
}

function isReadiness(value: unknown): value is Pick<Readiness, 'checks'> & { status: string } {
  if (typeof value !== 'object' || value === null) return false;
  const { status, checks } = value as { status?: unknown; checks?: Record<string, { ok?: unknown }> };
  return typeof status === 'string' && typeof checks === 'object' && checks !== null && READINESS_CHECKS.every((name) => typeof checks[name]?.ok === 'boolean');
}

function parseReadiness(body: string): (Pick<Readiness, 'checks'> & { status: string }) | null {
  try {
    const value: unknown = JSON.parse(body);
    return isReadiness(value) ? value : null;
  } catch {
    return null;
  }
}

function printChecks(checks: Readiness['checks'], ready: boolean): void {
  for (const name of READINESS_CHECKS) {
    const { ok, code, message } = checks[name];
    const detail = [code === null ? '' : ` (${code})`, message === undefined || message === '' ? '' : ` - ${message}`].join('');
    process.stdout.write(`${name}: ${ok ? 'ok' : 'FAILED'}${detail}\n`);
  }
  process.stdout.write(ready ? 'ready\n' : 'not ready\n');
}

export function registerMonitoringCommands(program: Command): void {
  const config = (command: Command) => createCliContext(command.optsWithGlobals<GlobalOptions>()).config;
  const keyFileOption = (): Option =>
    new Option('--api-key-file <file>', 'a file holding an API key (metrics:read; system:read for details), sent to the running service');

  program
    .command('metrics')
    .description("print the metrics in the Prometheus text format: the running service's, or else computed from the data directory")
    .addOption(new Option('--format <format>', 'output format').choices(['prometheus']).default('prometheus'))
    .addOption(keyFileOption())
    .action(async (options: MonitoringOptions, command: Command) => {
      const settings = config(command);
      const answer = await askService(settings, '/metrics', await apiKeyHeaders(options.apiKeyFile));
      if (answer.reached && answer.status === 200) {
        process.stderr.write(`disk2iso: metrics of the service running at ${serviceAddress(settings)?.label}\n`);
        process.stdout.write(answer.body);
        return;
      }
      const text = await withDataDir(settings, (database) => {
        const jobs = createJobRepository(database);
        return renderDataDirMetrics({
          config: settings,
          countJobs: () => jobs.countByStatus(),
          activeJobs: async () => [...(await activeJobsByDevice(jobs)).values()],
          output: createOutputProbe(() => settings.storage.output_dir),
        });
      });
      const refused = answer.reached && (answer.status === 401 || answer.status === 403);
      process.stderr.write(
        `disk2iso: ${whyNotTheService(settings, answer)}; computed the metrics from the data directory ${settings.data_dir} instead ` +
          `(jobs, queue, read rates, output storage${refused ? "; for all of the service's, pass --api-key-file with a key holding metrics:read, or add this address to metrics.allow_addresses" : ''})\n`,
      );
      process.stdout.write(text);
    });

  program
    .command('health')
    .description(
      'exit 0 when the running service is ready (database writable, output directory writable and below the stop threshold, job runner alive), 1 when not',
    )
    .addOption(keyFileOption())
    .action(async (options: MonitoringOptions, command: Command) => {
      const settings = config(command);
      const answer = await askService(settings, '/api/v1/health/ready', await apiKeyHeaders(options.apiKeyFile));
      const readiness = answer.reached ? parseReadiness(answer.body) : null;
      if (answer.reached && readiness !== null) {
        process.stderr.write(`disk2iso: asked the service running at ${serviceAddress(settings)?.label}\n`);
        const ready = answer.status === 200 && readiness.status === 'ready';
        printChecks(readiness.checks, ready);
        process.exitCode = ready ? EXIT.ok : EXIT.failed;
        return;
      }
      if (answer.reached && answer.status !== 404) {
        // The service runs but gave no readiness (shutting down, rate limited): it is not ready.
        process.stderr.write(`disk2iso: ${whyNotTheService(settings, answer)}\n`);
        process.stdout.write('not ready\n');
        process.exitCode = EXIT.failed;
        return;
      }
      const why = whyNotTheService(settings, answer);
      const local = await checkDataDir(settings, why);
      process.stderr.write(`disk2iso: ${why}; checked the data directory ${settings.data_dir} instead\n`);
      printChecks(local.checks, false);
      process.exitCode = EXIT.failed;
    });
}
