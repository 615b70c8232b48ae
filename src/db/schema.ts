import type { Generated } from 'kysely';
import type { MaintenanceKind, MaintenanceStatus } from '../archive/maintenance-task.js';
import type { ArchiveStatus, VerificationOrigin } from '../archive/model.js';
import type { VerificationTaskStatus } from '../archive/verification-task.js';
import type { DiscKind } from '../drives/types.js';
import type { ImagingPhase } from '../imaging/types.js';
import type { AutomationMode, DuplicatePolicy } from '../jobs/automation-model.js';
import type { JobPriority, JobStatus, RequestedAction } from '../jobs/model.js';
import type { LogLevel } from '../log.js';
import type { DeliveryStatus, NotificationChannel } from '../notifications/model.js';
import type { AuthTables } from './auth-schema.js';

/**
 * Table shapes as kysely sees them: snake_case columns, timestamps as ISO 8601 UTC text, JSON
 * columns as text (the repositories parse and serialise them). The CHECK constraints in the
 * migrations guarantee that the union-typed columns hold only the listed values, which the
 * capabilities that own them declare (jobs/model.ts, archive/model.ts, auth/roles.ts, log.ts).
 */

export interface JobsTable {
  id: string;
  name: string;
  status: JobStatus;
  priority: JobPriority;
  device_id: string;
  device_path: string;
  output_file: string;
  options: string;
  phase: ImagingPhase | null;
  progress: number;
  size_bytes: number | null;
  bytes_done: number;
  speed_bps: number | null;
  eta_seconds: number | null;
  bad_bytes: number;
  error_count: number;
  error_code: string | null;
  error_message: string | null;
  archive_id: string | null;
  created_by: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  seq: number;
  lease_owner: string | null;
  lease_expires_at: string | null;
  /** JSON of a LeaseHolder (migration 0006); null while no lease is held. */
  lease_holder: string | null;
  attempts: number;
  requested_action: RequestedAction | null;
  /** The cluster node whose drive the job reads (migration 0019); null in the embedded mode. */
  node_id: string | null;
}

export interface JobLogsTable {
  id: Generated<number>;
  job_id: string;
  at: string;
  level: LogLevel;
  message: string;
}

export interface ArchivesTable {
  id: string;
  job_id: string | null;
  filename: string;
  path: string;
  size_bytes: number;
  created_at: string;
  checksums: string;
  metadata: string;
  source: string;
  disc_kind: DiscKind | null;
  bad_bytes: number;
  status: ArchiveStatus;
  last_verified_at: string | null;
  /** 0 or 1; SQLite has no boolean. */
  last_verified_ok: number | null;
  /** Lower-cased filename, label, notes and tags, one per line: what archive search matches against. */
  search_text: string;
  /** An archive_categories id; set to null when the category is deleted. */
  category_id: string | null;
  /** 1 to 5, or null. */
  rating: number | null;
  /** JSON of its ArchiveRecovery (migration 0016), or null without PAR2 data. */
  recovery: string | null;
  /** The cluster node whose disk holds the image when the output folder is not shared (migration 0019); null otherwise. */
  node_id: string | null;
}

export interface ArchiveCategoriesTable {
  id: string;
  name: string;
  created_at: string;
}

/** A signed-in user's choices that follow them across devices (the archive page's view). */
interface UserPreferencesTable {
  user_name: string;
  key: string;
  value: string;
}

/** FTS5 index of each archive's words, kept in sync by triggers on archives (migration 0015). */
interface ArchivesFtsTable {
  archive_id: string;
  name: string;
  label: string;
  volume: string;
  tags: string;
  notes: string;
  fields: string;
}

export interface ArchiveVerificationsTable {
  id: Generated<number>;
  archive_id: string;
  started_at: string;
  finished_at: string;
  ok: number;
  results: string;
  seconds: number;
  requested_by: string | null;
  origin: Generated<VerificationOrigin>;
}

export interface SettingsTable {
  key: string;
  value: string;
  updated_at: string;
  updated_by: string | null;
}

export interface LogsTable {
  id: Generated<number>;
  at: string;
  level: LogLevel;
  source: string;
  message: string;
  job_id: string | null;
  details: string | null;
}

interface JobWorkersTable {
  /** The worker id its leases carry. */
  id: string;
  /** JSON of its LeaseHolder: which process on which host. */
  holder: string;
  started_at: string;
  seen_at: string;
}

export interface ArchiveVerificationTasksTable {
  id: string;
  archive_id: string;
  status: VerificationTaskStatus;
  bytes_done: number;
  bytes_total: number;
  speed_bps: number | null;
  eta_seconds: number | null;
  requested_by: string | null;
  origin: Generated<VerificationOrigin>;
  /** 0 or 1 */
  cancel_requested: number;
  attempts: number;
  lease_owner: string | null;
  lease_expires_at: string | null;
  /** JSON of a LeaseHolder; null while no lease is held. */
  lease_holder: string | null;
  error_code: string | null;
  error_message: string | null;
  verification_id: number | null;
  /** 0 or 1 for a completed task, else null. */
  ok: number | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface ArchiveMaintenanceTasksTable {
  id: string;
  kind: MaintenanceKind;
  archive_id: string | null;
  status: MaintenanceStatus;
  progress: number;
  /** JSON of what the task was asked to do. */
  params: string;
  /** JSON of what it did, once it ended. */
  result: string | null;
  requested_by: string | null;
  cancel_requested: number;
  attempts: number;
  error_code: string | null;
  error_message: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface DriveAutomationTable {
  device_id: string;
  mode: AutomationMode;
  name_template: string;
  read_attempts: number | null;
  /** JSON array of algorithms, or null for the setting. */
  checksums: string | null;
  /** 0 or 1, or null for the setting. */
  verify: number | null;
  eject: number;
  duplicates: DuplicatePolicy;
  counter: Generated<number>;
  updated_at: string;
  updated_by: string | null;
}

export interface DB extends AuthTables {
  jobs: JobsTable;
  job_logs: JobLogsTable;
  archives: ArchivesTable;
  archive_categories: ArchiveCategoriesTable;
  archives_fts: ArchivesFtsTable;
  user_preferences: UserPreferencesTable;
  archive_verifications: ArchiveVerificationsTable;
  settings: SettingsTable;
  logs: LogsTable;
  job_workers: JobWorkersTable;
  archive_verification_tasks: ArchiveVerificationTasksTable;
  archive_maintenance_tasks: ArchiveMaintenanceTasksTable;
  drive_automation: DriveAutomationTable;
  notification_events: NotificationEventsTable;
  webhook_endpoints: WebhookEndpointsTable;
  notification_deliveries: NotificationDeliveriesTable;
  disc_notices: DiscNoticesTable;
  push_subscriptions: PushSubscriptionsTable;
  cluster_nodes: ClusterNodesTable;
  cluster_drives: ClusterDrivesTable;
  service_secrets: ServiceSecretsTable;
}

/** A secret the instances of a cluster share (migration 0020); empty in the embedded mode. */
interface ServiceSecretsTable {
  name: string;
  value: string;
  created_at: string;
}

/** A browser (device) a user subscribed to Web Push: where the push service takes messages for it, and its keys. */
export interface PushSubscriptionsTable {
  id: string;
  user_id: string;
  /** The push service's URL for this browser (https). A capability: whoever knows it and the keys can message the device. */
  endpoint: string;
  /** The browser's P-256 public key (base64url), for the payload encryption. */
  p256dh: string;
  /** The browser's 16-byte auth secret (base64url). */
  auth: string;
  label: string;
  /** JSON array of domain event types. */
  events: string;
  created_at: string;
}

/** A disc waiting on the dashboard (notify mode, or a duplicate automatic mode asks about), one per drive. */
export interface DiscNoticesTable {
  drive_id: string;
  at: string;
  /** JSON: the notice as the dashboard shows it (jobs/automation-model.ts DiscNotice). */
  notice: string;
}

interface NotificationEventsTable {
  id: string;
  type: string;
  at: string;
  /** JSON object. */
  payload: string;
}

export interface WebhookEndpointsTable {
  id: string;
  name: string;
  url: string;
  /** `whsec_…`: the Standard Webhooks signing secret, never shown again after the endpoint's creation. */
  secret: string;
  /** JSON array of domain event types. */
  events: string;
  /** 0 or 1. */
  enabled: number;
  created_at: string;
  updated_at: string;
}

export interface NotificationDeliveriesTable {
  id: string;
  event_id: string;
  channel: NotificationChannel;
  endpoint_id: string | null;
  /** The push subscription (device) a `push` delivery goes to; null for the other channels. */
  subscription_id: string | null;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string;
  last_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  updated_at: string;
}

/** A process of the cluster (one row in the embedded mode): who it is, what it runs, when it last said so (migration 0019). */
export interface ClusterNodesTable {
  id: string;
  role: 'all' | 'web' | 'worker';
  version: string;
  hostname: string;
  pid: number;
  started_at: string;
  heartbeat_at: string;
  /** Where a web instance reaches this node's internal endpoints; null while it offers none. */
  internal_url: string | null;
}

/** A drive a node owns, as of its latest heartbeat. */
export interface ClusterDrivesTable {
  node_id: string;
  device_id: string;
  path: string;
  label: string;
  /** JSON of the drive's last known state (src/cluster/registry.ts). */
  state: string;
  updated_at: string;
}
