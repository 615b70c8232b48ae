import { join } from 'node:path';
import { Eta } from 'eta';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Permission } from '../http/permissions.js';
import type { JobView } from '../jobs/view.js';
import type { DeviceView } from '../system/devices.js';
import { createFormatters } from './format.js';
import { LANGUAGES, type Language, type Translate, allCatalogs, createPluralTranslator, createTranslator, requestLanguage } from './i18n.js';
import { badSectors, canRetryBadAreas, cardTone, jobActions, jobSectorSize, jobState, priorityEditable, rescuePass } from './job-card.js';
import { webRoot } from './paths.js';
import { currentPath, formFields, withParams } from './request.js';
import type { SettingField } from './settings-form.js';
import { THEMES, type Theme, themeOf } from './theme.js';
import type { I18n, WebSecurity, WebUser } from './types.js';

/** The navigation bar: path, catalog key, and what a user needs to see the entry. */
const NAVIGATION: ReadonlyArray<{ path: string; key: string; permission: Permission }> = [
  { path: '/', key: 'nav.dashboard', permission: 'jobs:read' },
  { path: '/drives', key: 'nav.drives', permission: 'devices:read' },
  { path: '/archive', key: 'nav.archive', permission: 'archives:read' },
  { path: '/config', key: 'nav.config', permission: 'system:read' },
];

/** Strings the browser scripts show (toasts, live labels); passed to them in a data attribute. */
const CLIENT_KEYS = [
  'status.',
  'phase.',
  'live.',
  'config.browser_notifications.',
  'account.push.state_',
  'account.push.unsupported',
  'account.push.denied',
  'account.push.failed',
  'account.push.no_events',
  'account.push.label_default',
  'errors.action_failed',
];

export function requestI18n(request: FastifyRequest): I18n {
  const lang = requestLanguage(request.headers);
  const catalog = allCatalogs()[lang];
  return { lang, t: createTranslator(catalog), tn: createPluralTranslator(catalog, lang), has: (key) => catalog.has(key), fmt: createFormatters(lang) };
}

let engine: Eta | undefined;

/**
 * The templates, compiled once each (they ship with the code). The engine belongs to the web
 * interface rather than to a Fastify scope, so a page can be rendered from anywhere: the not-found
 * page answers from the root of the app, outside the web's scope.
 */
function templates(): Eta {
  engine ??= new Eta({ views: join(webRoot(), 'templates'), cache: true, autoEscape: true });
  return engine;
}

/** Who looks at a page: the signed-in user and their session's CSRF token, or nobody (sign-in, setup, not found). */
export interface Viewer {
  user: WebUser | null;
  csrf: string;
}

export const NOBODY: Viewer = { user: null, csrf: '' };

function viewerOf(request: FastifyRequest, security: WebSecurity): Viewer {
  const user = security.currentUser(request);
  return user === null ? NOBODY : { user, csrf: security.csrfToken(request) };
}

/** What every template gets besides its own data. */
interface PageContext extends I18n {
  /** Null on the public pages when nobody is signed in: the layout then shows no navigation and no account. */
  user: WebUser | null;
  can(permission: Permission): boolean;
  csrf: string;
  /** Path and query of this page, for forms that return here. */
  here: string;
  languages: readonly Language[];
  /** The signed-in user's colour scheme (the layout puts it on <html>) and the choices the switch offers. */
  theme: Theme;
  themes: readonly Theme[];
  nav: Array<{ path: string; label: string; current: boolean }>;
  /** One-shot message after a redirect (`?notice=code` / `?error=code`), already translated. */
  notice: string | null;
  /** The job a "job created" notice is about: the page's script removes the notice once that job has moved on. */
  noticeJob: string | null;
  failure: string | null;
  clientStrings: string;
  /** Helpers templates call. */
  cardTone: typeof cardTone;
  jobState: typeof jobState;
  canRetryBadAreas: typeof canRetryBadAreas;
  rescuePass: typeof rescuePass;
  jobActions: typeof jobActions;
  priorityEditable: typeof priorityEditable;
  badSectors: typeof badSectors;
  jobSectorSize: typeof jobSectorSize;
  /** A job's or a verification task's error, in the page's language when the catalog knows its code. */
  jobError(subject: Pick<JobView, 'error'>): string;
  optionLabel(field: SettingField, option: string): string;
  driveName(drive: DescribedDrive): string;
}

type DescribedDrive = Pick<DeviceView, 'id' | 'path' | 'kind' | 'vendor' | 'model' | 'backing_file'>;

/**
 * A drive's name in the reader's language: the drives module describes drives in English for the
 * API, the CLI and MQTT; the pages build the same description from the drive's fields.
 */
function driveName(t: Translate, drive: DescribedDrive): string {
  const product = [drive.vendor, drive.model].filter((part) => part !== null).join(' ');
  switch (drive.kind) {
    case 'optical':
      return product || t('drive_name.optical', { id: drive.id });
    case 'block':
      if (drive.backing_file !== null) return t('drive_name.loop', { path: drive.path, file: drive.backing_file });
      return product ? t('drive_name.block_product', { path: drive.path, product }) : t('drive_name.block', { path: drive.path });
    case 'file':
      return t('drive_name.file', { path: drive.path });
    case 'demo':
      return t('drive_name.demo');
  }
}

/** Builds a message from a code, when the catalog knows it; codes come from our own redirects. */
function oneShot(i18n: I18n, prefix: 'notices' | 'errors', code: string | undefined): string | null {
  if (code === undefined || !/^[a-z_]{1,64}$/.test(code)) return null;
  const key = `${prefix}.${code}`;
  if (i18n.has(key)) return i18n.t(key);
  return prefix === 'errors' ? i18n.t('errors.action_failed') : null;
}

function pageContext(request: FastifyRequest, viewer: Viewer): PageContext {
  const i18n = requestI18n(request);
  const { user, csrf } = viewer;
  const here = currentPath(request);
  const query = formFields(request.query);
  const path = new URL(here, 'http://local.invalid').pathname;
  const catalog = allCatalogs()[i18n.lang];
  const clientStrings = Object.fromEntries([...catalog].filter(([key]) => CLIENT_KEYS.some((prefix) => key.startsWith(prefix))));
  return {
    ...i18n,
    user,
    can: (permission) => user?.can(permission) ?? false,
    csrf,
    here: withParams(here, {}),
    languages: LANGUAGES,
    theme: themeOf(request),
    themes: THEMES,
    nav: NAVIGATION.filter((entry) => user?.can(entry.permission) ?? false).map((entry) => ({
      path: entry.path,
      label: i18n.t(entry.key),
      current: entry.path === '/' ? path === '/' || path.startsWith('/jobs') : path.startsWith(entry.path),
    })),
    notice: oneShot(i18n, 'notices', query.one('notice')),
    noticeJob: /^job_[a-z0-9]{1,64}$/.test(query.one('notice_job') ?? '') ? (query.one('notice_job') ?? null) : null,
    failure: oneShot(i18n, 'errors', query.one('error')),
    clientStrings: JSON.stringify(clientStrings),
    cardTone,
    jobState,
    canRetryBadAreas,
    rescuePass,
    jobActions,
    priorityEditable,
    badSectors,
    jobSectorSize,
    jobError(subject) {
      if (subject.error === null) return '';
      const key = `errors.${subject.error.code}`;
      return i18n.has(key) ? i18n.t(key) : subject.error.message;
    },
    optionLabel(field, option) {
      // Event choices are named like everywhere else events are offered.
      const key = field.key === 'notifications.email_events' ? `event_type.${option}` : `config.options.${field.key}.${option}`;
      return i18n.has(key) ? i18n.t(key) : option;
    },
    driveName: (drive) => driveName(i18n.t, drive),
  };
}

/** Renders a page template inside the layout for whoever the viewer is. Pages are personal and live: never cached. */
export function renderView(
  request: FastifyRequest,
  reply: FastifyReply,
  viewer: Viewer,
  template: string,
  data: Record<string, unknown>,
  status = 200,
): FastifyReply {
  const html = templates().render(template, { ...pageContext(request, viewer), ...data });
  return reply.status(status).header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
}

/** Renders a page template inside the layout for the request's user (or nobody, on a public page). */
export async function renderPage(
  request: FastifyRequest,
  reply: FastifyReply,
  security: WebSecurity,
  template: string,
  data: Record<string, unknown>,
  status = 200,
): Promise<FastifyReply> {
  return renderView(request, reply, viewerOf(request, security), template, data, status);
}

/** Renders a template on its own (no layout): the fragments the browser scripts fetch for live updates. */
export async function renderFragment(
  request: FastifyRequest,
  reply: FastifyReply,
  security: WebSecurity,
  template: string,
  data: Record<string, unknown>,
): Promise<FastifyReply> {
  const html = templates().render(template, { ...pageContext(request, viewerOf(request, security)), ...data });
  return reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send(html);
}

/** Renders a whole page that stands alone (no layout, no user): the offline page the service worker keeps. */
export function renderStandalone(template: string, language: Language): string {
  const catalog = allCatalogs()[language];
  return templates().render(template, { lang: language, t: createTranslator(catalog) });
}
