import { type Clock, systemClock } from '../clock.js';
import type { AuditListFilter, AuditRepository } from '../db/audit-repository.js';
import type { Executor } from '../db/database.js';
import { ValidationError } from '../errors.js';
import type { JsonObject } from '../json.js';
import type { AuditEntry } from './model.js';

/**
 * Every event the audit trail knows, by type. Services of other areas record theirs here too
 * (configuration, jobs, archives, denied requests), so the vocabulary stays in one place.
 */
export const AUDIT_EVENTS = {
  authentication: ['login_success', 'login_failure', 'logout', 'lockout', 'token_issued'],
  password_change: ['change', 'change_failure'],
  api_key: ['create', 'revoke'],
  user: ['add', 'role_change', 'disable', 'enable', 'delete', 'reset_password'],
  setup: ['token_created', 'completed'],
  config: ['change'],
  job: ['create', 'delete'],
  archive: ['delete', 'edit', 'bulk_edit', 'import', 'file_download', 'folder_download', 'create_recovery', 'repair', 'adopt'],
  archive_category: ['create', 'change', 'delete'],
  webhook: ['create', 'change', 'delete'],
  access: ['access_denied'],
} as const;

type AuditEventType = keyof typeof AUDIT_EVENTS;
type AuditAction<E extends AuditEventType> = (typeof AUDIT_EVENTS)[E][number];

/** An event type with one of its actions, e.g. `{ event_type: 'job', action: 'create' }`. */
export type AuditedAction = { [E in AuditEventType]: { event_type: E; action: AuditAction<E> } }[AuditEventType];

/** The specification's audit record: who did what, from where, with what details. */
export type AuditEvent = {
  [E in AuditEventType]: {
    event_type: E;
    action: AuditAction<E>;
    /** A user name, `cli:<unix user>` for the CLI, or the name someone tried to log in as. */
    user: string | null;
    /** `local` for the CLI. */
    ip_address: string | null;
    user_agent: string | null;
    details?: JsonObject;
  };
}[AuditEventType];

export interface AuditTrail {
  record(event: AuditEvent): Promise<AuditEntry>;
  /** Records inside a caller's write transaction: the action and its entry commit or fail together. */
  recordWithin(tx: Executor, event: AuditEvent): Promise<void>;
  /** The repository's page of entries, as it stores them. */
  list(filter?: AuditListFilter): ReturnType<AuditRepository['list']>;
  /** The retention rule, the only way entries leave the trail: removes entries older than `days`. */
  applyRetention(days: number): Promise<number>;
}

const DAY_MS = 24 * 60 * 60 * 1000;
/** Names people type into a login form end up here; a bound keeps a flood of junk from bloating the trail. */
const MAX_TEXT = 256;

function bounded(value: string | null): string | null {
  return value === null ? null : value.slice(0, MAX_TEXT);
}

export function createAuditTrail(options: { repository: AuditRepository; now?: Clock }): AuditTrail {
  const { repository } = options;
  const now = options.now ?? systemClock;
  const entry = (event: AuditEvent) => ({
    at: now(),
    event_type: event.event_type,
    action: event.action,
    user: bounded(event.user),
    ip_address: bounded(event.ip_address),
    user_agent: bounded(event.user_agent),
    details: event.details ?? {},
  });

  return {
    record: (event) => repository.append(entry(event)),
    recordWithin: (tx, event) => repository.appendWithin(tx, entry(event)),
    list: (filter) => repository.list(filter),
    async applyRetention(days) {
      if (!Number.isSafeInteger(days) || days < 1) {
        throw new ValidationError('validation_failed', 'Audit retention must be a whole number of days, at least 1', { days });
      }
      return repository.prune(new Date(now().getTime() - days * DAY_MS));
    },
  };
}
