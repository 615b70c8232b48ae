import { type ArchiveService, createArchiveService } from '../../../src/archive/service.js';
import { localActor } from '../../../src/auth/principal.js';
import { USER_ROLES, type UserRole } from '../../../src/auth/roles.js';
import type { AuthService } from '../../../src/auth/service.js';
import { loadConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { type ArchiveRepository, createArchiveRepository } from '../../../src/db/archive-repository.js';
import type { Database } from '../../../src/db/database.js';
import { type JobRepository, createJobRepository } from '../../../src/db/job-repository.js';
import { queueNodeOf } from '../../../src/db/open.js';
import { createSqliteQueue } from '../../../src/db/sqlite-queue.js';
import { createVerificationTaskRepository } from '../../../src/db/verification-task-repository.js';
import { createDriveService } from '../../../src/drives/service.js';
import { createDriveStates } from '../../../src/drives/state.js';
import { createEventBus } from '../../../src/events/bus.js';
import type { App } from '../../../src/http/app.js';
import { SESSION_COOKIE } from '../../../src/http/guard.js';
import type { DeclaredRoute } from '../../../src/http/permissions.js';
import { verifyImage } from '../../../src/imaging/engine.js';
import type { JobEvents } from '../../../src/jobs/events.js';
import type { JobQueue } from '../../../src/jobs/queue.js';
import { type JobService, createJobService } from '../../../src/jobs/service.js';
import { silentLogger } from '../../../src/log.js';
import type { NotificationService } from '../../../src/notifications/service.js';
import { type StartServerOptions, startServer } from '../../../src/server.js';
import { activeJobsByDevice, createDeviceStatusService } from '../../../src/system/devices.js';

/**
 * The real service (startServer: real database, SQLite or PostgreSQL as its store names it; real auth, the REST API and the pages as they
 * run), with a real user per role, each signed in through the sign-in page. Requests carry the
 * session cookie of their role and, for forms, the CSRF token of that session and an Origin, as a
 * browser does.
 */
export const TEST_PASSWORD = 'Correct-Horse-42';
export type TestRole = UserRole;

/** The Origin of requests made with app.inject (its default Host is localhost:80). */
export const INJECT_ORIGIN = 'http://localhost:80';

export interface TestSession {
  user: string;
  /** The session id: the value of the session cookie. */
  id: string;
  /** `disk2iso_session=…`, for a Cookie header. */
  cookie: string;
  /** What forms of this session send as _csrf (and scripts as X-CSRF-Token). */
  csrf: string;
}

export interface SentRequest {
  status: number;
  body: string;
  location: string | undefined;
  headers: Record<string, unknown>;
  /** Cookies the answer set, by name (an empty value: the cookie was cleared). */
  cookies: Record<string, string>;
}

export interface SendOptions {
  /** Whose session to send; null sends none (anonymous). Default the admin's. */
  session?: TestSession | null;
  form?: Record<string, string | string[]>;
  /** Default true: forms carry the session's CSRF token as the page put it there. */
  csrf?: boolean;
  lang?: string;
  /** More cookies, e.g. `lang=en`. */
  cookie?: string;
  json?: boolean;
  headers?: Record<string, string>;
}

export interface WebTestServer {
  app: App;
  /** `http://127.0.0.1:PORT`, or '' when not listening. */
  url: string;
  config: Config;
  /** The signed-in session of each role's user (`admin-user`, `operator-user`, `viewer-user`); empty with `users: false`. */
  sessions: Record<TestRole, TestSession>;
  /** The admin's CSRF token. */
  csrf: string;
  /** The service's own auth service. */
  auth: AuthService;
  /**
   * The job queue and the catalogue, through a second connection to the service's database (as
   * another process would open it): for setting up jobs and images and looking at them.
   */
  jobs: JobService;
  queue: JobQueue;
  jobRepository: JobRepository;
  archives: ArchiveService;
  archiveRepository: ArchiveRepository;
  /** The service's durable stream of domain events (raising one sends it to the live streams). */
  notifications: NotificationService;
  /** Every route the service registered, with its method and permission. */
  routeTable: DeclaredRoute[];
  /** The first setup link the service announced (it does while no admin exists). */
  setupLink: Promise<string>;
  /** Signs in through POST /login and returns the new session. */
  login(name: string, password?: string): Promise<TestSession>;
  /** One request through app.inject: a form POST is url-encoded and carries the Origin (and the CSRF token). */
  send(method: string, url: string, options?: SendOptions): Promise<SentRequest>;
  close(): Promise<void>;
}

export interface WebTestServerOptions {
  /** Block devices or image files offered as drives. */
  devices?: string[];
  listen?: boolean;
  /** Default true: create a user per role and sign each in. False: no user at all (the setup link's case). */
  users?: boolean;
  /**
   * Default false: the rate limits are raised far beyond what the tests send (they fire requests
   * much faster than a person). True keeps the service's defaults.
   */
  defaultRateLimits?: boolean;
  /** More DISK2ISO_* variables, over the harness's own; an empty value leaves a variable of the harness out. */
  env?: Record<string, string>;
  /** Outbox timing (see StartServerOptions). */
  notifications?: StartServerOptions['notifications'];
  /** The service's drive checks (see StartServerOptions): a sysfs tree and an ejector of the test's own. */
  drives?: StartServerOptions['drives'];
}

/** Cookies from Set-Cookie headers: name to value. */
function setCookies(header: unknown): Record<string, string> {
  const lines = Array.isArray(header) ? header.map(String) : typeof header === 'string' ? [header] : [];
  return Object.fromEntries(
    lines.map((line) => {
      const pair = line.split(';')[0] ?? '';
      const separator = pair.indexOf('=');
      return [pair.slice(0, separator).trim(), pair.slice(separator + 1).trim()];
    }),
  );
}

/** The harness's variables with the test's on top; an empty value of the test's removes the variable. */
function harnessEnv(more: Record<string, string>, base: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries({ ...base, ...more }).filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1] !== ''));
}

/**
 * Where a test service keeps its state: a data dir, the variables that name its database (none for
 * the file in the data dir), how another connection opens that database, and how it all goes again.
 */
export interface WebTestStore {
  dataDir: string;
  databaseEnv: Record<string, string>;
  openDatabase(): Promise<Database>;
  remove(): Promise<void>;
}

/** The web test service on `store`: startWebTestServer's data dir of the engine switch, or an embedded one of a SQLite-only test. */
export async function startWebServerOn(store: WebTestStore, options: WebTestServerOptions = {}): Promise<WebTestServer> {
  const { dataDir } = store;
  const raised = options.defaultRateLimits
    ? {}
    : {
        DISK2ISO_SECURITY_RATE_LIMIT_PER_SECOND: '100000',
        DISK2ISO_SECURITY_RATE_LIMIT_BURST: '100000',
        DISK2ISO_SECURITY_LOGIN_RATE_PER_MINUTE: '100000',
        DISK2ISO_SECURITY_LOGIN_RATE_BURST: '100000',
      };
  const config = loadConfig({
    env: harnessEnv(options.env ?? {}, {
      DISK2ISO_DATA_DIR: dataDir,
      DISK2ISO_SERVER_HOST: '127.0.0.1',
      DISK2ISO_SERVER_PORT: '0',
      DISK2ISO_EXTRA_DEVICES: (options.devices ?? []).join(','),
      DISK2ISO_DRIVES_DEMO: 'off',
      DISK2ISO_DRIVES_SCAN_OPTICAL: 'false',
      DISK2ISO_IMAGING_MAP_SAVE_INTERVAL_SECONDS: '1',
      ...store.databaseEnv,
      ...raised,
    }),
  });
  let announced: (link: string) => void = () => undefined;
  const setupLink = new Promise<string>((resolve) => {
    announced = resolve;
  });
  const server = await startServer({
    config,
    log: silentLogger(),
    version: 'test',
    listen: options.listen ?? true,
    live: { flushIntervalMs: 100, heartbeatMs: 2000 },
    ...(options.notifications === undefined ? {} : { notifications: options.notifications }),
    ...(options.drives === undefined ? {} : { drives: options.drives }),
    onSetupLink: (link) => announced(link),
  });
  const { app, auth } = server;

  const database = await store.openDatabase();
  // As another process on the service's host opens them (the CLI does): on PostgreSQL, its node's jobs and drives.
  const queue = createSqliteQueue(database, { nodeId: queueNodeOf(config, database) });
  const jobRepository = createJobRepository(database);
  const archiveRepository = createArchiveRepository(database);
  const log = silentLogger();
  // The test's own services: their events reach nobody, the service's runner finds new jobs by polling.
  const drives = createDriveService({ config, log, ...(database.dialect === 'postgres' ? { node: config.cluster.node_name } : {}) });
  const driveStates = createDriveStates({ drives, busyDeviceIds: async () => new Set((await activeJobsByDevice(jobRepository)).keys()) });
  await driveStates.start();
  const devices = createDeviceStatusService({ drives, states: driveStates, jobs: jobRepository });
  const jobs = createJobService({ config, queue, jobs: jobRepository, drives: devices, events: createEventBus<JobEvents>(() => undefined), log });
  const archives = createArchiveService({
    config,
    archives: archiveRepository,
    tasks: createVerificationTaskRepository(database),
    verifyImage: (path, verifyOptions) => verifyImage(path, verifyOptions),
  });

  async function send(method: string, url: string, sendOptions: SendOptions = {}): Promise<SentRequest> {
    const session = sendOptions.session === undefined ? sessions.admin : sendOptions.session;
    const cookies = [session?.cookie ?? '', sendOptions.cookie ?? ''].filter((part) => part !== '');
    const headers: Record<string, string> = { ...sendOptions.headers };
    if (cookies.length > 0) headers['cookie'] = cookies.join('; ');
    if (sendOptions.lang) headers['accept-language'] = sendOptions.lang;
    if (sendOptions.json) headers['accept'] = 'application/json';
    let payload: string | undefined;
    if (sendOptions.form) {
      const form = new URLSearchParams();
      if ((sendOptions.csrf ?? true) && session) form.append('_csrf', session.csrf);
      for (const [key, value] of Object.entries(sendOptions.form)) {
        for (const item of Array.isArray(value) ? value : [value]) form.append(key, item);
      }
      payload = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
      headers['origin'] ??= INJECT_ORIGIN;
    }
    const response = await app.inject({ method: method as 'GET', url, headers, ...(payload === undefined ? {} : { payload }) });
    const location = response.headers['location'];
    return {
      status: response.statusCode,
      body: response.body,
      location: typeof location === 'string' ? location : undefined,
      headers: response.headers,
      cookies: setCookies(response.headers['set-cookie']),
    };
  }

  async function login(name: string, password = TEST_PASSWORD): Promise<TestSession> {
    const signedIn = await send('POST', '/login', { session: null, form: { username: name, password } });
    const id = signedIn.cookies[SESSION_COOKIE];
    if (signedIn.status !== 303 || id === undefined || id === '')
      throw new Error(`signing in ${name} failed with ${signedIn.status}: ${signedIn.body.slice(0, 300)}`);
    const cookie = `${SESSION_COOKIE}=${id}`;
    const me = await app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: { cookie } });
    const csrf = (me.json() as { csrf_token?: string }).csrf_token;
    if (csrf === undefined) throw new Error(`no CSRF token for ${name}: ${me.body}`);
    return { user: name, id, cookie, csrf };
  }

  const sessions = {} as Record<TestRole, TestSession>;
  if (options.users ?? true) {
    for (const role of USER_ROLES) {
      await auth.users.add({ name: `${role}-user`, role, password: TEST_PASSWORD }, localActor('test'));
      sessions[role] = await login(`${role}-user`);
    }
  }

  return {
    app,
    url: server.url ?? '',
    config,
    sessions,
    csrf: sessions.admin?.csrf ?? '',
    auth,
    jobs,
    queue,
    jobRepository,
    archives,
    archiveRepository,
    notifications: server.notifications,
    routeTable: server.routeTable,
    setupLink,
    login,
    send,
    async close() {
      await driveStates.stop();
      await database.close();
      await server.close('test finished');
      await store.remove();
    },
  };
}

/** The notification form's fields that a browser always submits (lists, selects and numbers), as the page shows them by default. */
export const NOTIFICATION_FORM_DEFAULTS: Record<string, string | string[]> = {
  notifications__email_events: ['job.completed', 'job.completed_with_errors', 'job.failed'],
  notifications__email_language: 'en',
  notifications__smtp_port: '587',
  notifications__smtp_security: 'starttls',
};
