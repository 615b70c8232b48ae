import type { FastifyRequest } from 'fastify';
import type { AdoptionService } from '../archive/adopt.js';
import type { CatalogueService } from '../archive/catalogue.js';
import type { ArchiveFiles } from '../archive/files.js';
import type { RecoveryService } from '../archive/recovery.js';
import type { ArchiveService } from '../archive/service.js';
import type { AuditTrail } from '../audit/trail.js';
import type { ApiKeyService } from '../auth/api-keys.js';
import type { LoginService } from '../auth/login.js';
import type { Actor } from '../auth/principal.js';
import type { SetupService } from '../auth/setup.js';
import type { UserService } from '../auth/users.js';
import type { NodeRegistry } from '../cluster/registry.js';
import type { Config } from '../config/schema.js';
import type { PreferenceRepository } from '../db/catalogue-repository.js';
import type { Permission } from '../http/permissions.js';
import type { AutomationService } from '../jobs/automation.js';
import type { JobService } from '../jobs/service.js';
import type { MqttChannel } from '../notifications/mqtt.js';
import type { PushChannel } from '../notifications/push.js';
import type { NotificationService } from '../notifications/service.js';
import type { DeviceStatusService } from '../system/devices.js';
import type { SettingsService } from '../system/settings.js';
import type { SystemStatusService } from '../system/status.js';
import type { Formatters } from './format.js';
import type { Language, Translate, TranslatePlural } from './i18n.js';

/**
 * What the pages need from the rest of the service: the same services the REST API uses, called
 * directly (never over HTTP), each narrowed to the operations the pages perform.
 */

/** A request's language, its catalog and formatters: what pages and forms translate with. */
export interface I18n {
  lang: Language;
  t: Translate;
  /** A text chosen by a count, in the language's plural forms. */
  tn: TranslatePlural;
  /** True when the catalog has the key (for messages chosen by a code). */
  has(key: string): boolean;
  fmt: Formatters;
}

/** Who is looking at a page. The auth layer's principal satisfies this. */
export interface WebUser {
  /** Whose push devices the account page shows. */
  userId: string;
  name: string;
  role: string;
  /** The password expired or was reset: nothing but changing it is allowed (`can` is false for everything). */
  mustChangePassword: boolean;
  can(permission: Permission): boolean;
}

/** What the auth layer provides per request: the signed-in user and the CSRF token forms must send back. */
export interface WebSecurity {
  /** The CSRF token of the signed-in user's session. */
  csrfToken(request: FastifyRequest): string;
  /** The signed-in user; throws the auth layer's 401 for a request without one. */
  user(request: FastifyRequest): WebUser;
  /** The signed-in user, or null: the public pages (sign-in, setup) are also shown to nobody. */
  currentUser(request: FastifyRequest): WebUser | null;
}

type WebArchives = Pick<
  ArchiveService,
  | 'list'
  | 'get'
  | 'updateMetadata'
  | 'remove'
  | 'startVerification'
  | 'startVerifications'
  | 'cancelVerification'
  | 'activeVerifications'
  | 'verificationTasks'
  | 'verifications'
>;
type WebDevices = Pick<DeviceStatusService, 'views' | 'eject' | 'get'>;
type WebSystemStatus = Pick<SystemStatusService, 'status'>;
type WebSettings = Pick<SettingsService, 'update' | 'check'>;
type WebNotifications = Pick<NotificationService, 'listEndpoints' | 'listDeliveries' | 'createEndpoint' | 'deleteEndpoint' | 'sendTest'>;

/** A signed-in user acting through a request, as the auth layer's `requestActor` makes it. */
type RequestActor = Extract<Actor, { kind: 'request' }>;

/**
 * Signing in and out, the first admin's setup, users, API keys, one's own password and the audit
 * trail: the auth service's parts, narrowed, and how a request becomes an actor (which throws for
 * a request without a signed-in user).
 */
export interface WebAccounts {
  login: LoginService['login'];
  logout: LoginService['logout'];
  setup: Pick<SetupService, 'needed' | 'isValid' | 'complete'>;
  users: Pick<UserService, 'add' | 'list' | 'changeOwnPassword' | 'setRole' | 'disable' | 'enable' | 'delete'>;
  apiKeys: Pick<ApiKeyService, 'create' | 'list' | 'revoke'>;
  audit: Pick<AuditTrail, 'list'>;
  actor(request: FastifyRequest): RequestActor;
}

/** Recovery data, repair and adoption, as the pages use them. */
interface WebIntegrity {
  recovery: Pick<RecoveryService, 'create' | 'repair' | 'tasks'>;
  adoption: Pick<AdoptionService, 'start'>;
  /** The redundancy the form suggests. */
  defaultRedundancy: () => number;
}

export interface WebDeps {
  /** The running service's configuration, shared with the services; settings changes show here. */
  config: Config;
  jobs: JobService;
  devices: WebDevices;
  archives: WebArchives;
  /** Folders and files inside archived images (the archive page's file browser). */
  archiveFiles: Pick<ArchiveFiles, 'list' | 'search'>;
  /** Categories, bulk edits and the archive page's remembered view. */
  catalogue: Pick<
    CatalogueService,
    'categories' | 'createCategory' | 'renameCategory' | 'deleteCategory' | 'bulkEdit' | 'viewOf' | 'setView' | 'importCatalogue'
  >;
  system: WebSystemStatus;
  /** The cluster's nodes (the dashboard's system panel; the embedded mode: this process alone). */
  nodes: Pick<NodeRegistry, 'nodes'>;
  settings: WebSettings;
  notifications: WebNotifications;
  /** The MQTT connection, for the status line of the configuration page's MQTT section. */
  mqtt: Pick<MqttChannel, 'status'>;
  security: WebSecurity;
  accounts: WebAccounts;
  /** Each drive's automation (the drives page's form) and the discs waiting on the dashboard. */
  automation: Pick<AutomationService, 'notices' | 'settings' | 'update'>;
  /** Recovery data, repair and adoption (src/web/pages/archive-integrity.ts). */
  integrity: WebIntegrity;
  /** Each user's small choices that follow them to every device (the colour scheme). */
  preferences: PreferenceRepository;
  /** The signed-in user's push devices (the account's notifications page). */
  push: Pick<PushChannel, 'list' | 'unsubscribe'>;
}
