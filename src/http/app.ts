import type { Socket } from 'node:net';
import { AjvCompiler } from '@fastify/ajv-compiler';
import fastifyCookie from '@fastify/cookie';
import proxyAddr from '@fastify/proxy-addr';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import type { AuditTrail } from '../audit/trail.js';
import { type DomainError, TooManyRequestsError, UnavailableError, ValidationError } from '../errors.js';
import { installAuditHook } from './audit-hook.js';
import { type ServerErrorSink, answerFrameworkError, installErrorHandlers } from './errors.js';
import type { RequestGuard } from './guard.js';
import { type DeclaredRoute, requireDeclaredPermissions } from './permissions.js';
import { type RateLimit, createRateLimiter } from './rate-limit.js';
import { installSecurityHeaders } from './security-headers.js';

export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

/** A route module: registers its routes on the app it is given, and nothing else. */
export type RouteModule = (app: App) => void | Promise<void>;

/** Per-address request limits; read on every request, so settings changes apply at once. */
interface RateLimits {
  general: () => RateLimit;
  /** Routes declaring `rateLimit: 'login'` (password and key checks) count against this one as well. */
  login: () => RateLimit;
}

/** Answers requests for unknown URLs that are not API calls (the web interface's 404 page). */
type PageNotFoundHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

export interface BuildAppOptions {
  version: string;
  logger: FastifyServerOptions['loggerInstance'];
  routes: RouteModule[];
  /** Largest JSON body accepted; bigger ones get 413 before any parsing. */
  bodyLimitBytes?: number;
  /**
   * The one place authentication and authorization plug in: every route with a declared permission
   * passes it before its handler runs. Without a guard (unit tests of the app alone) nothing is checked.
   */
  guard?: RequestGuard;
  rateLimits?: RateLimits;
  /** Peers (addresses, CIDR ranges) whose X-Forwarded-For/-Proto/-Host are believed. */
  trustedProxies?: string[];
  /**
   * True when the service listens on a unix socket: its peers have no address and can only be the
   * proxy (the socket is mode 0660 for the proxy's group), so their X-Forwarded-* headers count.
   */
  onUnixSocket?: boolean;
  pageNotFound?: PageNotFoundHandler;
  /** Where routes declaring `config.audit` record their successful requests. */
  audit?: Pick<AuditTrail, 'record'>;
  /** False while the service shuts down: new API requests then get 503. */
  accepting?: () => boolean;
  onServerError?: ServerErrorSink;
  /** Runs first when the app closes, before it waits for open connections (live streams must end here). */
  beforeClose?: () => void | Promise<void>;
  /** Told every answered request (the HTTP metrics). */
  observeResponse?: (response: AnsweredRequest) => void;
}

interface AnsweredRequest {
  method: string;
  /** The route's pattern (`/api/v1/jobs/:job_id`), never the URL itself; null when no route matched. */
  route: string | null;
  statusCode: number;
  seconds: number;
}

export interface BuiltApp {
  app: App;
  /** Every route with the permission it declared (for docs/security.md and the authorization tests). */
  routeTable: DeclaredRoute[];
}

/**
 * Whose X-Forwarded-* headers count: the configured proxies, and a peer on the unix socket, which has
 * no address and can only be the proxy (the socket is mode 0660 for the proxy's group). On TCP a
 * peer without an address is nobody's proxy: what the service listens on decides, not the address.
 */
function trustedPeers(proxies: string[], onUnixSocket: boolean): (address: string | undefined, hop: number) => boolean {
  const listed = proxies.length > 0 ? proxyAddr.compile(proxies) : () => false;
  return (address, hop) => (address === undefined ? onUnixSocket && hop === 0 : listed(address, hop));
}

/** For the internal routes between nodes (`nodeSignature`): null for a validly signed call, else why it is refused; undefined for every other route. */
function nodeCallRefusal(request: FastifyRequest): DomainError | null | undefined {
  return request.routeOptions.config.nodeSignature?.(request);
}

/** Query strings and paths are text, so numbers and booleans in them are converted; JSON bodies must carry the right types. */
const COERCING_AJV = { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } as const;
const STRICT_AJV = { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } as const;

export async function buildApp(options: BuildAppOptions): Promise<BuiltApp> {
  const validators = AjvCompiler();
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    trustProxy: trustedPeers(options.trustedProxies ?? [], options.onUnixSocket ?? false),
    logController: new LogController({ disableRequestLogging: true }),
    frameworkErrors: answerFrameworkError,
    schemaController: {
      compilersFactory: {
        buildValidator(externalSchemas) {
          const coercing = validators(externalSchemas, { customOptions: { ...COERCING_AJV } });
          const strict = validators(externalSchemas, { customOptions: { ...STRICT_AJV } });
          return (route) => (route.httpPart === 'body' ? strict(route) : coercing(route));
        },
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>() as App;

  // Node asks the kernel for a TCP peer's address only when it is first read, and a closed socket has
  // none: a request still handled after its client hung up, whose address nothing had read yet (a
  // static asset, which the rate limiter skips), would have lost it. Read once here, it is kept.
  app.server.on('connection', (socket: Socket) => socket.remoteAddress);
  const routeTable = requireDeclaredPermissions(app);
  installErrorHandlers(app, options.onServerError, options.pageNotFound);
  installSecurityHeaders(app);
  await app.register(fastifyCookie);

  // Only JSON bodies: text/plain (which Fastify parses by default) becomes 415. An empty JSON body
  // counts as no body, so `POST …/verify` with a Content-Type header but nothing else still works.
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') {
      done(null, undefined);
      return;
    }
    // The callback form: it answers through `done`. Its declared type is a union with the promise
    // form, which the floating-promise lint cannot tell apart.
    void parseJson(request, body as string, done);
  });

  // Registered before our onRequest hook: its own hook marks upgrade requests, so that a refused
  // upgrade's socket is still closed after the error response (otherwise app.close() never ends).
  await app.register(fastifyWebsocket, { options: { maxPayload: 4096 } });
  const beforeClose = options.beforeClose;
  if (beforeClose) app.addHook('preClose', async () => beforeClose());
  const { accepting, guard, rateLimits } = options;
  const generalLimiter = rateLimits ? createRateLimiter(rateLimits.general) : null;
  const loginLimiter = rateLimits ? createRateLimiter(rateLimits.login) : null;
  app.addHook('onRequest', async (request) => {
    const { permission, rateLimit } = request.routeOptions.config;
    // Assets (routes without a declared permission) are neither limited nor authenticated: a page
    // load needs several. Unknown URLs (no route) count against the limit like any request.
    if (permission === undefined && request.routeOptions.url !== undefined) return;
    if (accepting && !accepting()) throw new UnavailableError('shutting_down', 'the service is shutting down; try again in a moment');
    const nodeRefusal = nodeCallRefusal(request);
    // Another node's signed call: no user, no limit (it relays many users' requests).
    if (nodeRefusal === null) return;
    const client = request.ip ?? 'unknown';
    const waitSeconds = Math.max(generalLimiter?.take(client) ?? 0, rateLimit === 'login' ? (loginLimiter?.take(client) ?? 0) : 0);
    if (waitSeconds > 0) throw new TooManyRequestsError('rate_limited', `Too many requests from ${client}; slow down`, waitSeconds);
    if (nodeRefusal !== undefined) throw nodeRefusal;
    if (guard && permission !== undefined) await guard.authorize(request, permission);
  });
  app.decorateRequest('principal', null);
  if (guard) app.addHook('preValidation', async (request) => guard.checkRequestOrigin(request));
  // No field of the API or a page takes a NUL character, and PostgreSQL refuses one in text (the
  // statement would fail as a server error): refused as bad input on both engines, before any route.
  app.addHook('preValidation', async (request) => {
    const field = nulField('params', request.params) ?? nulField('query', request.query) ?? nulField('body', request.body);
    if (field !== null) throw new ValidationError('validation_failed', `${field} contains a NUL character (U+0000), which no field takes`, { field });
  });
  if (options.audit) installAuditHook(app, options.audit);
  const observeResponse = options.observeResponse;
  if (observeResponse) {
    app.addHook('onResponse', async (request, reply) => {
      observeResponse({ method: request.method, route: request.routeOptions.url ?? null, statusCode: reply.statusCode, seconds: reply.elapsedTime / 1000 });
    });
  }

  await app.register(fastifySwagger, {
    // Every API route has a tag; the web interface's pages have none and are no part of the API.
    hideUntagged: true,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'disk2iso API',
        version: options.version,
        description: 'Bit-exact, verified archival images of optical discs. Every error is `{"error": {"code", "message", "details"}}`.',
      },
      servers: [],
      tags: [
        {
          name: 'jobs',
          description:
            'Imaging jobs: the durable queue. A completed job has an image in the archive; its `outcome` says whether that image is clean or `with_errors` ("completed with errors": unreadable sectors, zero-filled, listed in the rescue map). Filter on status=completed for every finished image and check outcome.',
        },
        { name: 'archives', description: 'Finished images: search, download, verification' },
        { name: 'devices', description: 'Drives and media' },
        { name: 'system', description: 'Status, settings, logs' },
        { name: 'live', description: 'Live job updates (WebSocket, Server-Sent Events)' },
        { name: 'auth', description: 'Signing in: sessions, bearer tokens, own password, first-admin setup' },
        { name: 'users', description: 'Users, API keys and the audit log' },
        {
          name: 'notifications',
          description:
            'Webhook endpoints and the delivery log. Each event is POSTed as JSON, signed per Standard Webhooks (https://www.standardwebhooks.com): ' +
            'headers `webhook-id` (the delivery id, the same on every retry: drop a repeat), `webhook-timestamp` (Unix seconds of the attempt) and ' +
            '`webhook-signature` (`v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under the endpoint secret without its `whsec_` prefix, base64-decoded). ' +
            'Body: `{"type": "job.completed", "timestamp": "2026-01-01T00:00:00.000Z", "data": {"event_id": "evt_…", "job": {"id", "name", "status", ' +
            '"device_id", "output_file", "size_bytes", "bytes_done", "bad_bytes", "error_code", "error_message", "archive_id", "created_at", "started_at", "finished_at"}}}`; ' +
            '`job.paused` adds `data.reason` (user, disk_full or shutdown), `service.started` has `data.version`, `notification.test` `data.message`. ' +
            "Discs and drives (`data.drive_id` always): `disc.inserted` has `label`, `kind` (data, dvd-video, bd-video, …), `media_type` (cd, dvd, bd or null), `size_bytes` (of the image to make), `volume_id`, `created_at` (the volume's); " +
            '`disc.removed` `label`, `kind`, `size_bytes` of the disc that left; `disc.unimageable` `label`, `kind` (null when unreadable), `reason` (an error code: audio_disc, blank_disc, unknown_size, media_unreadable, …) and `message`; ' +
            '`disc.waiting` (notify mode, or a likely duplicate automatic mode asks about) `label`, `size_bytes`, `name` (what "Image this disc" names it), `reason` (inserted or duplicate), `duplicate_of` ({"archive_id", "filename"} or null); ' +
            '`disc.duplicate_skipped` `label`, `duplicate_of`; `drive.appeared` `path`, `kind` (optical, block, file), `description`; `drive.vanished` only `drive_id`. ' +
            'Verifications, raised where a result is recorded (after imaging, asked for, in the background): `verification.passed` and `verification.failed` have `archive` ({"id", "filename", "path", "size_bytes", "status"}), `verification_id`, ' +
            '`trigger` (after_imaging or requested), `requested_by`, `started_at`, `finished_at` and `checksums`: [{"algorithm", "expected" (the archive\'s), "actual" (read now; null when only after imaging and failed), "ok"}], so bit rot shows as expected != actual. ' +
            'The output file system, looked at every 30 s: `storage.warning_passed`, `storage.stop_passed` (imaging pauses), `storage.stop_cleared`, `storage.warning_cleared` have `threshold` (warning or stop), `threshold_percent`, `used_percent`, `free_bytes`, `total_bytes`, `path`; ' +
            'each crossing is sent once: a level is left only 1 percentage point below its threshold, and a restart does not repeat the last one. ' +
            'Types: job.queued, job.started, job.paused, job.completed, job.completed_with_errors (unreadable sectors), job.failed, job.cancelled, service.started, ' +
            'disc.inserted, disc.removed, disc.unimageable, disc.waiting, disc.duplicate_skipped, drive.appeared, drive.vanished, verification.passed, verification.failed, ' +
            'storage.warning_passed, storage.stop_passed, storage.stop_cleared, storage.warning_cleared, notification.test. ' +
            'A 2xx answer within 10 s is a delivery; anything else is tried again after 30 s, doubling up to an hour, 10 attempts in all.',
        },
      ],
      components: {
        securitySchemes: {
          apiKey: { type: 'apiKey', in: 'header', name: 'X-API-Key' },
          bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
          session: { type: 'apiKey', in: 'cookie', name: 'disk2iso_session' },
        },
      },
    },
  });
  // BaseLayout: without Swagger UI's top bar, whose logo is an SVG with an inline <style> the
  // page's CSP refuses. The page is named after the product; its heading is the document's title and version.
  await app.register(fastifySwaggerUi, {
    routePrefix: '/api/docs',
    staticCSP: true,
    theme: { title: `disk2iso ${options.version} API` },
    uiConfig: { layout: 'BaseLayout' },
  });

  app.get('/api/v1/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());
  // biome-ignore lint/nursery/noMisusedPromises: register takes async plugins (FastifyPluginAsync); the lint reads only its callback overload.
  for (const register of options.routes) await app.register(async (scope) => register(scope as App));
  await app.ready();
  return { app, routeTable };
}

/**
 * Where a parsed request part (strings, and arrays and objects of them, as JSON and forms give)
 * holds U+0000, as a path like `body.metadata.notes`, or null when it holds none.
 */
function nulField(path: string, value: unknown): string | null {
  if (typeof value === 'string') return value.includes('\u0000') ? path : null;
  if (Array.isArray(value)) {
    for (const [index, inner] of value.entries()) {
      const found = nulField(`${path}[${index}]`, inner);
      if (found !== null) return found;
    }
    return null;
  }
  if (value === null || typeof value !== 'object' || Buffer.isBuffer(value)) return null;
  for (const [key, inner] of Object.entries(value)) {
    if (key.includes('\u0000')) return `${path} (a key)`;
    const found = nulField(`${path}.${key}`, inner);
    if (found !== null) return found;
  }
  return null;
}
