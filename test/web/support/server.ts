import { join } from 'node:path';
import type { JobRecord } from '../../../src/jobs/model.js';
import { createTestDataDir, databaseEnv, openDataDirDatabase, removeTestDataDir } from '../../support/database.js';
import { type WebTestServer, type WebTestServerOptions, startWebServerOn } from './web-server.js';

export {
  INJECT_ORIGIN,
  NOTIFICATION_FORM_DEFAULTS,
  type SendOptions,
  type SentRequest,
  TEST_PASSWORD,
  type TestRole,
  type TestSession,
  type WebTestServer,
} from './web-server.js';

/**
 * The real service with a user per role signed in (./web-server.ts), its state in a data dir of the
 * engine switch: a SQLite file, or in the PostgreSQL pass a database of its own.
 */
export async function startWebTestServer(options: WebTestServerOptions = {}): Promise<WebTestServer> {
  const dataDir = await createTestDataDir('disk2iso-web-');
  const store = {
    dataDir,
    databaseEnv: databaseEnv(dataDir),
    openDatabase: () => openDataDirDatabase(dataDir),
    remove: () => removeTestDataDir(dataDir),
  };
  return startWebServerOn(store, options);
}

/**
 * A job the test adds on `device`, a drive the service does not have (`/dev/<device>`), with its
 * image in the output folder. With `worker` it runs under that worker's lease from the moment it is
 * added, so the service's own runner, which takes every queued job it can, never gets it.
 */
export function addTestJob(server: WebTestServer, job: { name: string; device: string; sizeBytes: number; worker?: string }): Promise<JobRecord> {
  return server.queue.enqueue({
    name: job.name,
    deviceId: job.device,
    devicePath: `/dev/${job.device}`,
    outputFile: join(server.config.storage.output_dir, `${job.name}.iso`),
    sizeBytes: job.sizeBytes,
    ...(job.worker === undefined ? {} : { claim: { workerId: job.worker, leaseMs: 600_000 } }),
  });
}
