import { AjvCompiler } from '@fastify/ajv-compiler';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import fastifyWebsocket from '@fastify/websocket';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { UnavailableError } from '../errors.js';
import { type ServerErrorSink, installErrorHandlers } from './errors.js';
import { type DeclaredRoute, type RoutePermission, requireDeclaredPermissions } from './permissions.js';

export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

/** A route module: registers its routes on the app it is given, and nothing else. */
export type RouteModule = (app: App) => void | Promise<void>;

/**
 * The one place authentication and authorization plug in: called before every /api request with
 * the permission its route declared. Throwing a domain error (ForbiddenError, …) refuses the request.
 */
export type Authorizer = (request: FastifyRequest, permission: RoutePermission) => void | Promise<void>;

export interface BuildAppOptions {
  version: string;
  logger: FastifyServerOptions['loggerInstance'];
  routes: RouteModule[];
  /** Largest JSON body accepted; bigger ones get 413 before any parsing. */
  bodyLimitBytes?: number;
  authorize?: Authorizer;
  /** False while the service shuts down: new API requests then get 503. */
  accepting?: () => boolean;
  onServerError?: ServerErrorSink;
  /** Runs first when the app closes, before it waits for open connections (live streams must end here). */
  beforeClose?: () => void | Promise<void>;
}

export interface BuiltApp {
  app: App;
  /** Every route with the permission it declared (for docs/security.md and the authorization tests). */
  routeTable: DeclaredRoute[];
}

/** Query strings and paths are text, so numbers and booleans in them are converted; JSON bodies must carry the right types. */
const COERCING_AJV = { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } as const;
const STRICT_AJV = { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false } as const;

export async function buildApp(options: BuildAppOptions): Promise<BuiltApp> {
  const validators = AjvCompiler();
  const app = Fastify({
    loggerInstance: options.logger,
    bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
    logController: new LogController({ disableRequestLogging: true }),
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

  const routeTable = requireDeclaredPermissions(app);
  installErrorHandlers(app, options.onServerError);

  // Only JSON bodies: text/plain (which Fastify parses by default) becomes 415. An empty JSON body
  // counts as no body, so `POST …/verify` with a Content-Type header but nothing else still works.
  app.removeContentTypeParser('text/plain');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') {
      done(null, undefined);
      return;
    }
    parseJson(request, body as string, done);
  });

  // Registered before our onRequest hook: its own hook marks upgrade requests, so that a refused
  // upgrade's socket is still closed after the error response (otherwise app.close() never ends).
  await app.register(fastifyWebsocket, { options: { maxPayload: 4096 } });
  const beforeClose = options.beforeClose;
  if (beforeClose) app.addHook('preClose', async () => beforeClose());
  const accepting = options.accepting;
  const authorize = options.authorize;
  app.addHook('onRequest', async (request) => {
    if (!request.url.startsWith('/api/')) return;
    if (accepting && !accepting()) throw new UnavailableError('shutting_down', 'the service is shutting down; try again in a moment');
    const permission = request.routeOptions.config.permission;
    if (authorize && permission !== undefined) await authorize(request, permission);
  });

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'disk2iso API',
        version: options.version,
        description: 'Bit-exact, verified archival images of optical discs. Every error is `{"error": {"code", "message", "details"}}`.',
      },
      servers: [],
      tags: [
        { name: 'jobs', description: 'Imaging jobs: the durable queue' },
        { name: 'archives', description: 'Finished images: search, download, verification' },
        { name: 'devices', description: 'Drives and media' },
        { name: 'system', description: 'Status, settings, logs' },
        { name: 'live', description: 'Live job updates (WebSocket, Server-Sent Events)' },
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
  await app.register(fastifySwaggerUi, { routePrefix: '/api/docs', staticCSP: true });

  app.get('/api/v1/openapi.json', { config: { permission: 'public' }, schema: { hide: true } }, async () => app.swagger());
  for (const register of options.routes) await app.register(async (scope) => register(scope as App));
  await app.ready();
  return { app, routeTable };
}
