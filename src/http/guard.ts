import type { FastifyRequest } from 'fastify';
import type { AuditTrail } from '../audit/trail.js';
import { API_KEY_PREFIX } from '../auth/api-keys.js';
import { AuthenticationError, PasswordChangeRequiredError } from '../auth/errors.js';
import { type Actor, type ClientInfo, type Principal, requestActor } from '../auth/principal.js';
import type { RequestCredentials } from '../auth/service.js';
import { csrfTokenMatches } from '../auth/sessions.js';
import { ForbiddenError } from '../errors.js';
import type { RoutePermission } from './permissions.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who the request acts for; null when it carried no valid credentials. Set by the guard. */
    principal: Principal | null;
  }
}

/** The web session's cookie. Its value is a random 256-bit id; the database keeps only its hash. */
export const SESSION_COOKIE = 'disk2iso_session';
const CSRF_HEADER = 'x-csrf-token';
/** The form field carrying the CSRF token when JavaScript is off. */
const CSRF_FIELD = '_csrf';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Denials of these are audited: someone reached for administration they do not hold. */
const ADMIN_PERMISSIONS = new Set<RoutePermission>(['users:admin', 'system:write']);

export interface Authenticator {
  authenticateRequest(credentials: RequestCredentials): Promise<Principal | null>;
}

export interface RequestGuard {
  /** onRequest: who is asking, and may they. Throws AuthenticationError (401) or ForbiddenError (403). */
  authorize(request: FastifyRequest, permission: RoutePermission): Promise<void>;
  /** preValidation (the body is parsed by then): CSRF token and Origin for cookie-authenticated state changes, Origin for WebSockets. */
  checkRequestOrigin(request: FastifyRequest): void;
}

export function credentialsOf(request: FastifyRequest): RequestCredentials {
  const authorization = request.headers.authorization;
  const apiKey = request.headers['x-api-key'];
  // Any other scheme is carried on as an unusable bearer, so it fails instead of falling back to the cookie.
  const bearer = authorization === undefined ? undefined : (/^Bearer (\S+)$/i.exec(authorization)?.[1] ?? '');
  // Clients that can only send a bearer token (Prometheus) send an API key that way: keys carry
  // their own prefix, which no JWT starts with. An X-API-Key header still comes first.
  const keyAsBearer = bearer?.startsWith(API_KEY_PREFIX) === true && apiKey === undefined;
  return {
    apiKeyHeader: typeof apiKey === 'string' ? apiKey : keyAsBearer ? bearer : undefined,
    bearer: keyAsBearer ? undefined : bearer,
    cookie: request.cookies[SESSION_COOKIE],
  };
}

export function clientOf(request: FastifyRequest): ClientInfo {
  const agent = request.headers['user-agent'];
  return { ip: request.ip, userAgent: typeof agent === 'string' ? agent : null };
}

/** The signed-in principal; throws 401 for a request without one (only public routes can get there). */
export function principalOf(request: FastifyRequest): Principal {
  if (request.principal === null) throw new AuthenticationError('unauthenticated', 'Sign in first');
  return request.principal;
}

export function actorOf(request: FastifyRequest): Extract<Actor, { kind: 'request' }> {
  return requestActor(principalOf(request), clientOf(request)) as Extract<Actor, { kind: 'request' }>;
}

/** `https://host:port` of the request as the browser addressed it (a trusted proxy's view included). */
export function ownOrigin(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}`;
}

function isWebSocketUpgrade(request: FastifyRequest): boolean {
  return request.method === 'GET' && request.headers.upgrade?.toLowerCase() === 'websocket';
}

/**
 * The Origin a browser sent, or the origin of its Referer when it sent no Origin; null when neither.
 * `Origin: null` is a claim like any other and never falls back to the Referer: browsers send it from
 * sandboxed frames, file: and data: pages, after cross-site redirects and from pages whose referrer
 * policy withholds their origin. Our pages send `Referrer-Policy: same-origin`, under which a
 * browser names their origin on every request to this site, so only another site's page sends null.
 */
function claimedOrigin(request: FastifyRequest): string | null {
  const origin = request.headers.origin;
  if (typeof origin === 'string') return origin;
  const referer = request.headers.referer;
  if (typeof referer !== 'string') return null;
  try {
    return new URL(referer).origin;
  } catch {
    return null;
  }
}

function csrfTokenOf(request: FastifyRequest): string | undefined {
  const header = request.headers[CSRF_HEADER];
  if (typeof header === 'string') return header;
  const body = request.body;
  if (typeof body === 'object' && body !== null && CSRF_FIELD in body) {
    const field = (body as Record<string, unknown>)[CSRF_FIELD];
    if (typeof field === 'string') return field;
  }
  return undefined;
}

export function createRequestGuard(deps: { auth: Authenticator; audit: Pick<AuditTrail, 'record'> }): RequestGuard {
  const { auth, audit } = deps;

  async function auditDenial(request: FastifyRequest, principal: Principal, permission: RoutePermission): Promise<void> {
    const client = clientOf(request);
    await audit.record({
      event_type: 'access',
      action: 'access_denied',
      user: principal.name,
      ip_address: client.ip,
      user_agent: client.userAgent,
      details: {
        method: request.method,
        route: request.routeOptions.url ?? request.url.split('?')[0] ?? '',
        permission,
        via: principal.via,
        ...(principal.apiKeyId === undefined ? {} : { api_key_id: principal.apiKeyId }),
      },
    });
  }

  return {
    async authorize(request, permission) {
      const credentials = credentialsOf(request);
      const presented = credentials.apiKeyHeader !== undefined || credentials.bearer !== undefined || credentials.cookie !== undefined;
      request.principal = presented ? await auth.authenticateRequest(credentials) : null;
      if (permission === 'public') return;
      const principal = request.principal;
      if (principal === null) {
        const address: string | undefined = request.ip;
        if (!presented && address !== undefined && request.routeOptions.config.allowAddress?.(address) === true) return;
        throw presented
          ? new AuthenticationError('invalid_credentials', 'The credentials are invalid, expired or revoked; sign in again')
          : new AuthenticationError('unauthenticated', 'Sign in first: send a session cookie, an X-API-Key or a bearer token');
      }
      if (permission === 'authenticated') return;
      if (principal.mustChangePassword) throw new PasswordChangeRequiredError();
      if (!principal.can(permission)) {
        if (ADMIN_PERMISSIONS.has(permission)) await auditDenial(request, principal, permission);
        throw new ForbiddenError('permission_denied', `${principal.name} lacks the ${permission} permission`, { permission });
      }
    },

    checkRequestOrigin(request) {
      // A WebSocket is exempt from the same-origin policy: a page of another origin on the same site
      // (another service on this host, on another port) could open one with the session cookie and
      // read every job's updates. Browsers always send its Origin, so the check below refuses that.
      const webSocket = isWebSocketUpgrade(request);
      if (SAFE_METHODS.has(request.method) && !webSocket) return;
      const claimed = claimedOrigin(request);
      const expected = ownOrigin(request);
      // Keys and bearer tokens are never sent by a browser on its own, so they need no CSRF defence;
      // a browser's cross-site request shows itself by its Origin whoever it acts for.
      if (claimed !== null && claimed !== expected) {
        throw new ForbiddenError('origin_mismatch', `Cross-origin request refused: ${claimed} is not ${expected}`, { origin: claimed });
      }
      // The stream changes nothing, and a browser cannot send a CSRF token with a WebSocket.
      if (webSocket) return;
      const principal = request.principal;
      // A public route (login, setup) acts for nobody, so a session cookie sent along changes nothing.
      if (principal === null || principal.via !== 'session' || request.routeOptions.config.permission === 'public') return;
      if (claimed === null) throw new ForbiddenError('origin_missing', 'A request signed in by cookie must carry an Origin or Referer header');
      if (!csrfTokenMatches(principal, csrfTokenOf(request))) {
        throw new ForbiddenError('csrf_failed', 'Missing or wrong CSRF token; reload the page and try again');
      }
    },
  };
}
