import type { Database } from '../db/database.js';
import { ValidationError } from '../errors.js';
import { NODE_ROLES, type NodeRole } from './model.js';

/** The parts of the service a process starts. */
export interface RoleParts {
  /** The drive watch (probes, udev, drive automation) and the drives in the heartbeat. */
  drives: boolean;
  /** The job runner. */
  jobs: boolean;
  /** The archive's background work: verification, re-verification schedule, file index, maintenance tasks. */
  archiveWork: boolean;
  /** The web pages and the REST API; without them only the health, readiness and metrics endpoints answer. */
  pages: boolean;
}

const PARTS: Record<NodeRole, RoleParts> = {
  all: { drives: true, jobs: true, archiveWork: true, pages: true },
  // A web instance serves every worker's drives from the database; it reads none itself.
  web: { drives: false, jobs: false, archiveWork: false, pages: true },
  worker: { drives: true, jobs: true, archiveWork: true, pages: false },
};

export function partsOfRole(role: NodeRole): RoleParts {
  return PARTS[role];
}

/** The routes a role serves: every one with the pages, else the probes alone. */
export function routesOfRole<Route>(parts: RoleParts, probes: Route[], all: Route[]): Route[] {
  return parts.pages ? all : probes;
}

export function isNodeRole(value: string): value is NodeRole {
  return (NODE_ROLES as readonly string[]).includes(value);
}

/** Whether processes on this database form a cluster (PostgreSQL), or it serves one service alone (the embedded SQLite file). */
export function sharesNodeList(dialect: Database['dialect']): boolean {
  return dialect === 'postgres';
}

/**
 * Refuses a split role on the embedded database: one SQLite file serves one process, so a web
 * instance there would have no worker and a worker no pages.
 */
export function assertRoleFits(role: NodeRole, dialect: Database['dialect']): void {
  if (role !== 'all' && !sharesNodeList(dialect)) {
    throw new ValidationError(
      'role_needs_cluster',
      `--role ${role} needs the cluster database (database.url set to a PostgreSQL URL); the embedded database runs every part in one process (--role all)`,
      { role },
    );
  }
}
