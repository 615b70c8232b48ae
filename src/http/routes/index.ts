import type { CatalogueService } from '../../archive/catalogue.js';
import type { ArchiveFiles } from '../../archive/files.js';
import type { ArchiveService } from '../../archive/service.js';
import type { AuthService } from '../../auth/service.js';
import type { ArchiveRelay } from '../../cluster/archive-relay.js';
import type { NodeRegistry } from '../../cluster/registry.js';
import type { AutomationService } from '../../jobs/automation.js';
import type { JobService } from '../../jobs/service.js';
import type { MqttChannel } from '../../notifications/mqtt.js';
import type { PushChannel } from '../../notifications/push.js';
import type { NotificationService } from '../../notifications/service.js';
import type { DeviceStatusService } from '../../system/devices.js';
import type { EventLog } from '../../system/event-log.js';
import type { Readiness } from '../../system/readiness.js';
import type { SettingsService } from '../../system/settings.js';
import type { SystemStatusService } from '../../system/status.js';
import type { RouteModule } from '../app.js';
import type { LiveHub } from '../live.js';
import { apiKeyRoutes } from './api-keys.js';
import { archiveFileRoutes } from './archive-files.js';
import { archiveIntegrityRoutes } from './archive-integrity.js';
import { archiveRoutes } from './archives.js';
import { auditRoutes } from './audit.js';
import { authRoutes } from './auth.js';
import { automationRoutes } from './automation.js';
import { catalogueRoutes } from './catalogue.js';
import { clusterRoutes } from './cluster.js';
import { deviceRoutes } from './devices.js';
import { healthRoutes } from './health.js';
import { jobRoutes } from './jobs.js';
import { liveRoutes } from './live.js';
import { logRoutes } from './logs.js';
import { type MetricsEndpoint, metricsRoutes } from './metrics.js';
import { notificationRoutes } from './notifications.js';
import { pushRoutes } from './push.js';
import { systemRoutes } from './system.js';
import { userRoutes } from './users.js';

/** Everything the REST API and the live streams delegate to. */
export interface ApiServices {
  jobs: JobService;
  archives: ArchiveService;
  archiveFiles: ArchiveFiles;
  /** In a cluster, how images on another node's disk are streamed from it; absent: every image is read here. */
  relay?: ArchiveRelay;
  catalogue: CatalogueService;
  devices: DeviceStatusService;
  system: SystemStatusService;
  /** The cluster's nodes (the embedded mode: this process alone). */
  nodes: Pick<NodeRegistry, 'nodes'>;
  settings: SettingsService;
  eventLog: EventLog;
  live: LiveHub;
  auth: AuthService;
  automation: AutomationService;
  notifications: NotificationService;
  mqtt: Pick<MqttChannel, 'status'>;
  push: PushChannel;
  /** Resolves while the service can answer; throws a domain error otherwise. */
  health: () => Promise<void>;
  /** The readiness checks (database writable, output directory writable and below the stop threshold, job runner alive). */
  readiness: () => Promise<Readiness>;
  metrics: MetricsEndpoint;
  /** PAR2 recovery data, repair, and adopting existing images. */
  integrity: Parameters<typeof archiveIntegrityRoutes>[0];
}

export function apiRoutes(services: ApiServices): RouteModule[] {
  return [
    healthRoutes(services.health, services.readiness),
    metricsRoutes(services.metrics),
    jobRoutes(services.jobs),
    archiveFileRoutes(services.archiveFiles, services.relay),
    archiveRoutes(services.archives, services.relay),
    catalogueRoutes(services.archives, services.catalogue),
    archiveIntegrityRoutes(services.integrity),
    deviceRoutes(services.devices),
    automationRoutes(services.automation, services.devices),
    systemRoutes(services.system, services.settings),
    clusterRoutes(services.nodes),
    logRoutes(services.eventLog),
    liveRoutes(services.live),
    authRoutes(services.auth),
    userRoutes(services.auth),
    apiKeyRoutes(services.auth),
    auditRoutes(services.auth.audit),
    notificationRoutes(services.notifications, services.mqtt),
    pushRoutes(services.push),
  ];
}

/** A process serving no pages and no API (a cluster worker): what load balancers and monitoring ask for, no more. */
export function probeRoutes(services: Pick<ApiServices, 'health' | 'readiness' | 'metrics'>): RouteModule[] {
  return [healthRoutes(services.health, services.readiness), metricsRoutes(services.metrics)];
}
