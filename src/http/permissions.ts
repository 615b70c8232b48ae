import type { FastifyInstance, RouteOptions } from 'fastify';
import type { AuditedAction } from '../audit/trail.js';
import type { Permission } from '../auth/permissions.js';
import type { DomainError } from '../errors.js';

export { PERMISSIONS, type Permission } from '../auth/permissions.js';

/**
 * What a route needs: one permission; `authenticated` for what every signed-in principal may do
 * even while its password must be changed (who am I, change my password, log out); or `public` for
 * the few routes that must answer without credentials (health check, login, setup).
 */
export type RoutePermission = Permission | 'authenticated' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: RoutePermission;
    /** `login`: the stricter per-address limit for routes that check passwords or keys. */
    rateLimit?: 'login';
    /** A successful request is recorded in the audit trail as this action (with the route's parameters). */
    audit?: AuditedAction;
    /**
     * Besides the permission: a request without any credentials from a client address this accepts
     * passes too (GET /metrics for the addresses in metrics.allow_addresses). Credentials, when sent,
     * are checked as always.
     */
    allowAddress?: (address: string) => boolean;
    /**
     * The internal routes another node of the cluster calls (`public`: no user's credentials count
     * there): null when the request carries that node's valid signature (cluster.secret), else the
     * error it is refused with. Signed calls are not rate limited (a web instance relays many users'
     * downloads); refused ones count against the caller's address like any request.
     */
    nodeSignature?: (request: FastifyRequest) => DomainError | null;
  }
}

export interface DeclaredRoute {
  method: string;
  url: string;
  permission: RoutePermission;
}

/** Swagger UI's pages and the stylesheets and scripts every page (the login page too) loads. */
function isAssetRoute(url: string): boolean {
  return url.startsWith('/api/docs') || url.startsWith('/static/');
}

/**
 * Refuses to start when a route has no declared permission, so a forgotten declaration is a boot
 * failure (and a test failure), never an open door. Returns the live route table. Only static assets
 * and the API's documentation are public without saying so.
 */
export function requireDeclaredPermissions(app: FastifyInstance): DeclaredRoute[] {
  const table: DeclaredRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const permission = (route.config as { permission?: RoutePermission } | undefined)?.permission;
    if (permission === undefined && !isAssetRoute(route.url)) {
      throw new Error(`route ${methods.join(',')} ${route.url} declares no permission`);
    }
    for (const method of methods) {
      if (method === 'HEAD' && isAssetRoute(route.url)) continue;
      table.push({ method, url: route.url, permission: permission ?? 'public' });
    }
  });
  return table;
}
