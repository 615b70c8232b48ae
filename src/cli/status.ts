import type { Command } from 'commander';
import { type NodeView, nodeJson, nodeViews } from '../cluster/registry.js';
import { createClusterRepository } from '../db/cluster-repository.js';
import { errorMessage } from '../errors.js';
import { ACTIVE_JOB_STATUSES, JOB_STATUSES } from '../jobs/model.js';
import { storageUsage } from '../system/resources.js';
import { type GlobalOptions, createCliContext } from './context.js';
import { EXIT } from './exit-codes.js';
import { formatBytes, formatDuration, formatRate } from './format.js';
import { type LocalService, withLocalService } from './local-service.js';

/** Where the answer came from: the running service (its database rows, renewed by it), or the data directory alone. */
async function serviceLine(local: LocalService): Promise<{ running: boolean; line: string; service: unknown }> {
  const service = await local.runningService();
  const { database } = local;
  const where = database.dialect === 'sqlite' ? `the data directory ${local.config.data_dir}` : database.location;
  if (service === null) return { running: false, line: `not running (read from ${where})`, service: null };
  return {
    running: true,
    line: `running (pid ${service.holder.pid} on ${service.holder.host}; read from its database in ${where})`,
    service: { pid: service.holder.pid, host: service.holder.host, worker_id: service.id },
  };
}

/**
 * The cluster's nodes, one line each with its drives below: names and labels come from other
 * processes and from discs, so they are printed as JSON strings (no control character reaches the terminal).
 */
function nodeLines(nodes: readonly NodeView[], version: string): string[] {
  if (nodes.length === 0) return ['Nodes: none registered (a running service registers itself)'];
  const lines = [`Nodes: ${nodes.length} (${nodes.filter((node) => node.online).length} online)`];
  for (const node of nodes) {
    const mismatch = node.versionMismatch ? ` [VERSION MISMATCH: this disk2iso is ${version}]` : '';
    lines.push(
      `  ${JSON.stringify(node.id)} ${node.role}, version ${JSON.stringify(node.version)}${mismatch}: ${node.online ? 'online' : 'OFFLINE'}, heartbeat ${formatDuration(node.heartbeatAgeSeconds)} ago, pid ${node.pid} on ${JSON.stringify(node.hostname)}, ${node.drives.length} drive(s)`,
    );
    for (const drive of node.drives) {
      const disc = drive.state.label === null ? (drive.state.present === false ? ', empty' : '') : `, disc ${JSON.stringify(drive.state.label)}`;
      lines.push(
        `    ${JSON.stringify(drive.deviceId)} ${JSON.stringify(drive.path)}${drive.label === '' ? '' : ` ${JSON.stringify(drive.label)}`}: ${drive.state.media}${disc}${drive.state.error === null ? '' : ` (${drive.state.error})`}`,
      );
    }
  }
  return lines;
}

export function registerStatusCommands(program: Command): void {
  program
    .command('status')
    .description("the service, its jobs, the output folder and the cluster's nodes; exit 0 when the service runs, 1 when it does not")
    .option('--json', 'print JSON')
    .action(async (options: { json?: boolean }, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      await withLocalService(ctx, async (local) => {
        const { running, line, service } = await serviceLine(local);
        const counts = await local.jobs.countByStatus();
        const { items: active } = await local.jobs.list({ statuses: [...ACTIVE_JOB_STATUSES], limit: 100 });
        const outputDir = local.config.storage.output_dir;
        const storage = await storageUsage(outputDir).catch((error: unknown) => ({ error: errorMessage(error) }));
        const version = program.version() ?? 'unknown';
        const nodes = nodeViews(await createClusterRepository(local.database).list(), {
          now: new Date(),
          offlineAfterMs: local.config.cluster.offline_after_seconds * 1000,
          version,
          selfId: null,
        });
        process.exitCode = running ? EXIT.ok : EXIT.failed;
        if (options.json) {
          process.stdout.write(
            `${JSON.stringify(
              {
                service: { running, ...(service === null ? {} : { process: service }) },
                data_dir: local.config.data_dir,
                jobs: counts,
                active: active.map((job) => ({
                  id: job.id,
                  name: job.name,
                  device_id: job.deviceId,
                  status: job.status,
                  phase: job.phase,
                  progress: job.progress,
                  speed_bps: job.speedBps,
                  eta_seconds: job.etaSeconds,
                })),
                storage: { output_dir: outputDir, ...storage },
                nodes: nodes.map(nodeJson),
              },
              null,
              2,
            )}\n`,
          );
          return;
        }
        const lines = [`Service: ${line}`, `Jobs: ${JOB_STATUSES.map((status) => `${counts[status]} ${status}`).join(', ')}`];
        for (const job of active) {
          lines.push(
            `  ${job.id} "${job.name}" on ${job.deviceId}: ${job.phase ?? job.status} ${job.progress.toFixed(1)}% (${formatRate(job.speedBps ?? 0)}, ETA ${formatDuration(job.etaSeconds)})`,
          );
        }
        if ('error' in storage) lines.push(`Output: ${outputDir}: ${storage.error}`);
        else {
          const usedPercent = storage.totalBytes > 0 ? Math.round((storage.usedBytes / storage.totalBytes) * 100) : 0;
          lines.push(
            `Output: ${outputDir}: ${formatBytes(storage.freeBytes)} free of ${formatBytes(storage.totalBytes)} (${usedPercent}% used; warning at ${local.config.storage.warn_threshold_percent}%, imaging pauses at ${local.config.storage.stop_threshold_percent}%)`,
          );
        }
        lines.push(...nodeLines(nodes, version));
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  program
    .command('stop')
    .description('pause jobs at once, keeping everything read (the emergency stop); resume them in the web interface or with the API')
    .argument('[jobs...]', 'job ids to pause')
    .option('--all', 'pause every job that has not finished')
    .action(async (ids: string[], options: { all?: boolean }, command: Command) => {
      const ctx = createCliContext(command.optsWithGlobals<GlobalOptions>());
      if ((options.all === true) === ids.length > 0) {
        process.stderr.write('disk2iso: give job ids or --all (not both)\n');
        process.exitCode = EXIT.invalid;
        return;
      }
      await withLocalService(ctx, async (local) => {
        const changed = options.all ? await local.queue.requestStopAll('pause') : await Promise.all(ids.map((id) => local.queue.requestStop(id, 'pause')));
        const asked = changed.filter((job) => (ACTIVE_JOB_STATUSES as readonly string[]).includes(job.status));
        const paused = changed.filter((job) => job.status === 'paused');
        process.stdout.write(
          `Paused ${paused.length} job(s) at once${asked.length > 0 ? `; ${asked.length} running job(s) stop at their next read, maps saved` : ''}.\n`,
        );
      });
    });
}
