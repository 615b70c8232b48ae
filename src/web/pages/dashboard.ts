import type { FastifyRequest } from 'fastify';
import type { NodeView } from '../../cluster/registry.js';
import type { HashAlgorithm } from '../../config/schema.js';
import type { App } from '../../http/app.js';
import type { DiscNotice } from '../../jobs/automation-model.js';
import { FINISHED_JOB_STATUSES, UNFINISHED_JOB_STATUSES, isActive } from '../../jobs/model.js';
import type { JobView } from '../../jobs/view.js';
import type { SystemStatus } from '../../system/status.js';
import { DRIVE_STATE_TONE, type DriveStatusRow, driveState } from '../drive-state.js';
import { activeOrder, movesOnItsOwn } from '../job-card.js';
import { renderFragment, renderPage, requestI18n } from '../render.js';
import { formFields, withParams } from '../request.js';
import { type SectorMapView, readSectorMap } from '../sector-map.js';
import type { WebDeps } from '../types.js';
import { mediaProblem } from './jobs.js';
import { pagination } from './pagination.js';

const RECENT_FINISHED = 6;
const FINISHED_PAGE_SIZE = 20;
/** The active tab lists the unfinished jobs; more of them than drives can exist only as a queue, and this bounds one page of it. */
const ACTIVE_LIMIT = 200;

interface DashboardData {
  tab: 'active' | 'finished';
  /** The dashboard address these jobs belong to, for forms that come back to it (also from the fragment). */
  here: string;
  /** Where the page's script fetches this data again as a fragment. */
  fragmentUrl: string;
  /** Jobs reading or verifying: each gets a big card with its progress. */
  running: JobView[];
  /** The other unfinished jobs (queued, paused): one compact row each. */
  waiting: JobView[];
  activeTotal: number;
  /** Each drive and what it is doing; null for a user who may not see the drives. */
  drives: DriveStatusRow[] | null;
  driveTone: typeof DRIVE_STATE_TONE;
  finished: JobView[];
  finishedTotal: number;
  pages: ReturnType<typeof pagination> | null;
  system: SystemStatus | null;
  /** The cluster's nodes, with the system status (null alongside it). */
  nodes: NodeView[] | null;
  /** Rescue maps of the jobs working on bad areas, for their pass and what is left (see rescuePass). */
  sectorMaps: Record<string, SectorMapView | null>;
  /** Discs that wait for someone to image them (drive automation), with the job their button creates. */
  discNotices: Array<DiscNotice & { readAttempts: number; checksums: HashAlgorithm[]; verify: boolean; priority: string }>;
}

/** The drives as the dashboard lists them: the device status with the jobs and disc notices that concern each. */
async function driveRows(deps: WebDeps, request: FastifyRequest, unfinished: JobView[], noticeDrives: ReadonlySet<string>): Promise<DriveStatusRow[]> {
  const i18n = requestI18n(request);
  const canSeeAutomation = deps.security.user(request).can('system:read');
  const devices = await deps.devices.views();
  return Promise.all(
    devices.map(async (device) => {
      const problem = mediaProblem(i18n, device);
      const reading = device.job_id === null ? undefined : unfinished.find((job) => job.id === device.job_id);
      const queued = unfinished.find((job) => job.device_id === device.id && job.status === 'queued');
      const job = reading ?? queued ?? null;
      return {
        device,
        state: driveState(device, problem, { job: queued !== undefined, notice: noticeDrives.has(device.id) }),
        problem,
        job: job === null ? null : { id: job.id, name: job.name },
        mode: canSeeAutomation ? (await deps.automation.settings(device.id)).mode : null,
      };
    }),
  );
}

async function dashboardData(deps: WebDeps, request: FastifyRequest, canSeeSystem: boolean): Promise<DashboardData> {
  const query = formFields(request.query);
  const tab = query.one('tab') === 'finished' ? 'finished' : 'active';
  const page = Math.max(1, Number.parseInt(query.one('page') ?? '1', 10) || 1);
  const finishedLimit = tab === 'finished' ? FINISHED_PAGE_SIZE : RECENT_FINISHED;
  const [active, finished, system, nodes] = await Promise.all([
    deps.jobs.list({ status: [...UNFINISHED_JOB_STATUSES], limit: ACTIVE_LIMIT, offset: 0, sort: 'created', order: 'asc' }),
    deps.jobs.list({
      status: [...FINISHED_JOB_STATUSES],
      limit: finishedLimit,
      offset: tab === 'finished' ? (page - 1) * FINISHED_PAGE_SIZE : 0,
      sort: 'updated',
      order: 'desc',
    }),
    canSeeSystem ? deps.system.status() : Promise.resolve(null),
    canSeeSystem ? deps.nodes.nodes() : Promise.resolve(null),
  ]);
  const overBadAreas = active.jobs.filter(
    (job) => job.status === 'running' && (job.phase === 'trimming' || job.phase === 'scraping' || job.phase === 'retrying'),
  );
  const notices = deps.automation.notices();
  const canSeeDrives = deps.security.user(request).can('devices:read');
  const drives = canSeeDrives ? await driveRows(deps, request, active.jobs, new Set(notices.map((notice) => notice.driveId))) : null;
  const ordered = [...active.jobs].sort(activeOrder);
  const sectorMaps = Object.fromEntries(await Promise.all(overBadAreas.map(async (job) => [job.id, await readSectorMap(job.output_file)] as const)));
  return {
    tab,
    here: tab === 'finished' ? withParams('/', { tab, page: String(page) }) : '/',
    fragmentUrl: tab === 'finished' ? withParams('/fragments/dashboard', { tab, page: String(page) }) : '/fragments/dashboard',
    running: ordered.filter((job) => isActive(job.status)),
    waiting: ordered.filter((job) => !isActive(job.status)),
    drives,
    driveTone: DRIVE_STATE_TONE,
    activeTotal: active.total,
    finished: finished.jobs,
    finishedTotal: finished.total,
    pages: tab === 'finished' ? pagination(page, FINISHED_PAGE_SIZE, finished.total) : null,
    system,
    nodes,
    sectorMaps,
    discNotices: notices.map((notice) => ({
      ...notice,
      readAttempts: notice.options.read_attempts ?? deps.config.imaging.read_attempts,
      checksums: notice.options.checksums ?? [...deps.config.imaging.checksums],
      verify: notice.options.verify ?? deps.config.imaging.verify,
      eject: notice.options.eject ?? deps.config.storage.delete_source_on_success,
      priority: deps.config.imaging.priority,
    })),
  };
}

export function registerDashboard(app: App, deps: WebDeps): void {
  const { security } = deps;

  app.get('/', { config: { permission: 'jobs:read' } }, async (request, reply) => {
    const data = await dashboardData(deps, request, security.user(request).can('system:read'));
    return renderPage(request, reply, security, 'dashboard', {
      ...data,
      title: 'dashboard.title',
      browserNotifications: deps.config.notifications.browser,
      autoRefresh: [...data.running, ...data.waiting].some(movesOnItsOwn),
    });
  });

  /** The live part of the dashboard, fetched by the page's script when jobs change state. */
  app.get('/fragments/dashboard', { config: { permission: 'jobs:read' } }, async (request, reply) => {
    const data = await dashboardData(deps, request, security.user(request).can('system:read'));
    return renderFragment(request, reply, security, 'partials/dashboard-live', { ...data });
  });
}
