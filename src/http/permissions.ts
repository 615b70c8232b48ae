import type { FastifyInstance, RouteOptions } from 'fastify';
import type { Permission } from '../auth/permissions.js';

export { PERMISSIONS, type Permission } from '../auth/permissions.js';

/**
 * What a route needs: one permission, or `public` for the few routes that must answer without
 * credentials (health check, login).
 */
export type RoutePermission = Permission | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    permission?: RoutePermission;
  }
}

export interface DeclaredRoute {
  method: string;
  url: string;
  permission: RoutePermission;
}

/**
 * Refuses to start when a route under /api has no declared permission, so a forgotten declaration is
 * a boot failure (and a test failure), never an open door. Returns the live route table.
 */
export function requireDeclaredPermissions(app: FastifyInstance): DeclaredRoute[] {
  const table: DeclaredRoute[] = [];
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const permission = (route.config as { permission?: RoutePermission } | undefined)?.permission;
    const needsDeclaration = route.url.startsWith('/api/') && !route.url.startsWith('/api/docs');
    if (needsDeclaration && permission === undefined) {
      throw new Error(`route ${methods.join(',')} ${route.url} declares no permission`);
    }
    for (const method of methods) {
      if (method === 'HEAD' && route.url.startsWith('/api/docs')) continue;
      table.push({ method, url: route.url, permission: permission ?? 'public' });
    }
  });
  return table;
}
