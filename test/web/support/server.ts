import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyRequest } from 'fastify';
import { type ArchiveService, createArchiveService } from '../../../src/archive/service.js';
import { type Principal, localActor, requestActor, userPrincipal } from '../../../src/auth/principal.js';
import { USER_ROLES } from '../../../src/auth/roles.js';
import { type AuthService, createAuthService } from '../../../src/auth/service.js';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { type ArchiveRepository, createArchiveRepository } from '../../../src/db/archive-repository.js';
import { openDatabase } from '../../../src/db/database.js';
import { type JobRepository, createJobRepository } from '../../../src/db/job-repository.js';
import { createLogRepository } from '../../../src/db/log-repository.js';
import { createSettingsRepository } from '../../../src/db/settings-repository.js';
import { createDriveService } from '../../../src/drives/service.js';
import { ForbiddenError } from '../../../src/errors.js';
import { createEventBus } from '../../../src/events/bus.js';
import { type App, buildApp } from '../../../src/http/app.js';
import { createLiveHub } from '../../../src/http/live.js';
import type { RoutePermission } from '../../../src/http/permissions.js';
import { apiRoutes } from '../../../src/http/routes/index.js';
import { runImaging, verifyImage } from '../../../src/imaging/engine.js';
import type { JobEvents } from '../../../src/jobs/events.js';
import { type JobQueue, newWorkerId } from '../../../src/jobs/queue.js';
import { createJobRunner } from '../../../src/jobs/runner.js';
import { type JobService, createJobService } from '../../../src/jobs/service.js';
import { createSqliteQueue } from '../../../src/jobs/sqlite-queue.js';
import { silentLogger } from '../../../src/log.js';
import { createDeviceStatusService } from '../../../src/system/devices.js';
import { createEventLog } from '../../../src/system/event-log.js';
import { createSettingsService } from '../../../src/system/settings.js';
import { createSystemStatus } from '../../../src/system/status.js';
import { registerWebRoutes } from '../../../src/web/routes.js';
import type { WebAccounts, WebSecurity } from '../../../src/web/types.js';

/**
 * The service as the web interface will run in it: the real services, the real REST API and live
 * streams, and the page routes registered the way the server is asked to register them. Only the
 * sign-in is the test's own (the auth layer's HTTP side plugs in later): real users of the real
 * auth service, one per role, and the `test_user` cookie names whose request it is (default the
 * admin). Every request is checked against the permission its route declares, and every form
 * POST must carry this server's CSRF token, as the auth layer will demand.
 */
export const TEST_USER_COOKIE = 'test_user';
export const TEST_PASSWORD = 'Correct-Horse-42';
/** A password is never too old in these tests. */
const PASSWORD_MAX_AGE_MS = 90 * 24 * 3600 * 1000;
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";

export interface WebTestServer {
  app: App;
  /** `http://127.0.0.1:PORT`, or '' when not listening. */
  url: string;
  config: Config;
  csrf: string;
  jobs: JobService;
  queue: JobQueue;
  jobRepository: JobRepository;
  archives: ArchiveService;
  archiveRepository: ArchiveRepository;
  auth: AuthService;
  close(): Promise<void>;
}

export interface WebTestServerOptions {
  /** Block devices or image files offered as drives. */
  devices?: string[];
  /** Default true; render tests leave it off so queued jobs stay queued. */
  runJobs?: boolean;
  listen?: boolean;
}

/** The user a request acts for: the `test_user` cookie names a user or a role (its `ROLE-user`); default the admin. */
function userNameOf(request: FastifyRequest): string {
  const match = /(?:^|;\s*)test_user=([a-z][a-z0-9._-]{2,31})(?:;|$)/.exec(request.headers.cookie ?? '');
  const named = match?.[1];
  if (named === undefined) return 'admin-user';
  return (USER_ROLES as readonly string[]).includes(named) ? `${named}-user` : named;
}

export async function startWebTestServer(options: WebTestServerOptions = {}): Promise<WebTestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'disk2iso-web-'));
  const config = loadConfig({
    dataDir,
    env: {
      DISK2ISO_EXTRA_DEVICES: (options.devices ?? []).join(','),
      DISK2ISO_DRIVES_DEMO: 'off',
      DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
      DISK2ISO_IMAGING_MAP_SAVE_INTERVAL_SECONDS: '1',
    },
  });
  const log = silentLogger();
  const database = await openDatabase({ file: join(dataDir, 'disk2iso.db') });
  const jobRepository = createJobRepository(database);
  const archiveRepository = createArchiveRepository(database);
  const settingsRepository = createSettingsRepository(database);
  const eventLog = createEventLog({ logs: createLogRepository(database), log });
  const queue = createSqliteQueue(database);
  const events = createEventBus<JobEvents>((error) => {
    throw error;
  });
  const drives = createDriveService({ config, log });
  const jobs = createJobService({ config, queue, jobs: jobRepository, drives, events, log });
  const runner = createJobRunner({ config, queue, jobs: jobRepository, archives: archiveRepository, drives, events, log, runImaging, workerId: newWorkerId(), pollMs: 200 });
  const archives = createArchiveService({ config, archives: archiveRepository, verifyImage: (path) => verifyImage(path) });
  const settings = createSettingsService({ config, settings: settingsRepository });
  const devices = createDeviceStatusService({ drives, jobs: jobRepository });
  const system = createSystemStatus({
    config,
    version: 'test',
    countJobs: () => jobRepository.countByStatus(),
    checkQueue: () => queue.positions(),
    workers: () => 'running',
    countDrives: async () => (await drives.list()).length,
  });
  const live = createLiveHub({ events, flushIntervalMs: 100, heartbeatMs: 2000 });
  const auth = createAuthService({ database, dataDir });
  for (const role of USER_ROLES) await auth.users.add({ name: `${role}-user`, role, password: TEST_PASSWORD }, localActor('test'));

  const principals = new WeakMap<FastifyRequest, Principal>();
  const principalOf = async (request: FastifyRequest): Promise<Principal> => {
    let principal = principals.get(request);
    if (principal === undefined) {
      const user = await auth.users.get(userNameOf(request), localActor('test'));
      principal = userPrincipal(user, new Date(), PASSWORD_MAX_AGE_MS, 'session');
      principals.set(request, principal);
    }
    return principal;
  };
  const signedIn = (request: FastifyRequest): Principal => {
    const principal = principals.get(request);
    if (principal === undefined) throw new ForbiddenError('not signed in', undefined, 'not_signed_in');
    return principal;
  };
  const checkPermission = async (request: FastifyRequest, permission: RoutePermission | undefined): Promise<void> => {
    if (permission === undefined) throw new ForbiddenError(`route ${request.url} declares no permission`);
    const principal = await principalOf(request);
    if (permission !== 'public' && !principal.can(permission)) throw new ForbiddenError(`needs ${permission}`, { permission }, 'permission_denied');
  };
  const csrf = randomBytes(16).toString('hex');
  const security: WebSecurity = { csrfToken: () => csrf, user: signedIn };
  const accounts: WebAccounts = {
    users: auth.users,
    apiKeys: auth.apiKeys,
    audit: auth.audit,
    actor: (request) => requestActor(signedIn(request), { ip: request.ip, userAgent: request.headers['user-agent'] ?? null }) as ReturnType<WebAccounts['actor']>,
  };

  const { app } = await buildApp({
    version: 'test',
    logger: log,
    beforeClose: () => live.close(),
    authorize: (request, permission) => checkPermission(request, permission),
    routes: [
      ...apiRoutes({ jobs, archives, devices, system, settings, eventLog, live, health: async () => undefined }),
      async (scope) => {
        scope.addHook('onSend', async (_request, reply) => {
          reply.header('content-security-policy', CSP);
        });
        scope.addHook('preHandler', async (request) => {
          await checkPermission(request, request.routeOptions.config.permission);
          if (request.method === 'GET' || request.method === 'HEAD') return;
          const body = request.body as Record<string, unknown> | undefined;
          const given = request.headers['x-csrf-token'] ?? body?.['_csrf'];
          if (given !== csrf) throw new ForbiddenError('missing or wrong CSRF token', undefined, 'csrf_failed');
        });
        await registerWebRoutes(scope, { config, jobs, devices, archives, system, settings, security, accounts });
      },
    ],
  });
  if (options.runJobs ?? true) await runner.start();
  let url = '';
  if (options.listen ?? true) {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const address = app.server.address();
    if (address === null || typeof address === 'string') throw new Error('no TCP address');
    url = `http://127.0.0.1:${address.port}`;
  }
  return {
    app,
    url,
    config,
    csrf,
    jobs,
    queue,
    jobRepository,
    archives,
    archiveRepository,
    auth,
    async close() {
      await runner.stop();
      await app.close();
      await eventLog.flush();
      await database.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
