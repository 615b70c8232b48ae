import type { FastifyReply, FastifyRequest } from 'fastify';
import { ARCHIVE_VIEWS, type CategoryView } from '../../archive/catalogue.js';
import { ARCHIVE_CONDITIONS, type ArchiveCondition, type ArchiveMetadata, CUSTOM_FIELD_LIMITS, cleanCustomFields } from '../../archive/model.js';
import type { ArchiveListQuery, ArchiveView } from '../../archive/service.js';
import type { AuditedAction } from '../../audit/trail.js';
import type { ArchiveSort } from '../../db/archive-repository.js';
import type { DiscKind } from '../../drives/types.js';
import { ConflictError, DomainError, NotFoundError, ValidationError } from '../../errors.js';
import type { App } from '../../http/app.js';
import { checkCatalogueDocument } from '../../http/routes/catalogue.js';
import { userMessage } from '../errors.js';
import { renderFragment, renderPage, requestI18n } from '../render.js';
import { type FormFields, formFields, withParams } from '../request.js';
import { actionDone, actionFailed, returnPath } from '../respond.js';
import { readSectorMap } from '../sector-map.js';
import type { I18n, WebDeps } from '../types.js';
import { pagination } from './pagination.js';

const PAGE_SIZE = 20;
/** File hits shown per step; "more files" shows the next step as well. */
const FILE_PAGE_SIZE = 10;
const MAX_FILE_PAGES = 50;
const ARCHIVE_ID = /^archive_[a-z0-9]{1,64}$/;
const TASK_ID = /^verify_[a-z0-9]{1,64}$/;
const DISC_KINDS: readonly DiscKind[] = ['data', 'dvd-video', 'bd-video', 'audio', 'unknown'];
const SORTS: readonly ArchiveSort[] = ['relevance', 'date', 'name', 'size', 'rating'];
const RATINGS = ['1', '2', '3', '4', '5'] as const;
const CATEGORY_ID = /^category_[a-z0-9]{1,64}$/;
const MB = 1_000_000;
const MAX_LABEL = 200;
const MAX_TAGS = 20;
const MAX_TAG = 50;
const MAX_NOTES = 5000;
/** Bulk actions name at most one page of archives. */
const MAX_BULK = 100;
/** Verification runs listed on an image's page, newest first. */
const HISTORY_LIMIT = 50;
const CONTROL_CHARS = /[\u0000-\u001f\u007f-\u009f]/u;
const ARCHIVE_DELETE: AuditedAction = { event_type: 'archive', action: 'delete' };
const ARCHIVE_BULK_EDIT: AuditedAction = { event_type: 'archive', action: 'bulk_edit' };
const ARCHIVE_EDIT: AuditedAction = { event_type: 'archive', action: 'edit' };
const ARCHIVE_IMPORT: AuditedAction = { event_type: 'archive', action: 'import' };
/** The import form's text: a catalogue of some thousand described images. Larger ones go through the API. */
const MAX_IMPORT_CHARS = 2_000_000;
/** Form-encoding can triple JSON's punctuation; the body may be that much larger than the text. */
const IMPORT_BODY_LIMIT = 4 * MAX_IMPORT_CHARS;

/** The bulk form's change; null when a tag, the category or the rating is not valid. `none` clears a category or rating. */
function bulkEditOf(fields: FormFields): { add_tags: string[]; remove_tags: string[]; category_id?: string | null; rating?: number | null } | null {
  const add = splitTags(fields.one('add_tags') ?? '');
  const remove = splitTags(fields.one('remove_tags') ?? '');
  if ([...add, ...remove].some((tag) => [...tag].length > MAX_TAG || CONTROL_CHARS.test(tag)) || add.length > MAX_TAGS) return null;
  const edit: { add_tags: string[]; remove_tags: string[]; category_id?: string | null; rating?: number | null } = { add_tags: add, remove_tags: remove };
  const category = fields.one('category') ?? '';
  if (category === 'none') edit.category_id = null;
  else if (CATEGORY_ID.test(category)) edit.category_id = category;
  else if (category !== '') return null;
  const rating = fields.one('rating') ?? '';
  if (rating === 'none') edit.rating = null;
  else if (RATINGS.some((value) => value === rating)) edit.rating = Number(rating);
  else if (rating !== '') return null;
  return edit;
}

interface ArchiveQuery {
  q: string;
  from: string;
  to: string;
  minSize: string;
  maxSize: string;
  type: string;
  status: string;
  category: string;
  tag: string;
  rating: string;
  sort: ArchiveSort;
  order: 'asc' | 'desc';
  page: number;
  /** How many steps of file hits the page shows. */
  filePages: number;
}

type QueryErrors = Partial<Record<'from' | 'to' | 'minSize' | 'maxSize', string>>;

function parseDate(value: string): Date | null {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) return null;
  const date = new Date(`${value}T00:00:00Z`);
  return Number.isNaN(date.getTime()) ? null : date;
}

function parseMegabytes(value: string): number | null {
  if (!/^\d{1,9}([.,]\d{1,3})?$/.test(value)) return null;
  return Math.round(Number(value.replace(',', '.')) * MB);
}

function parseArchiveQuery(form: FormFields): ArchiveQuery {
  const sortValue = form.one('sort');
  const q = (form.one('q') ?? '').slice(0, 200);
  // Relevance needs words to rank by; without them the newest come first.
  const sort = SORTS.find((candidate) => candidate === sortValue && (candidate !== 'relevance' || q.trim() !== '')) ?? (q.trim() === '' ? 'date' : 'relevance');
  const orderValue = form.one('order');
  const categoryValue = form.one('category') ?? '';
  return {
    q,
    from: form.one('from') ?? '',
    to: form.one('to') ?? '',
    minSize: form.one('min_size') ?? '',
    maxSize: form.one('max_size') ?? '',
    type: DISC_KINDS.find((kind) => kind === form.one('type')) ?? '',
    status: ARCHIVE_CONDITIONS.find((condition) => condition === form.one('status')) ?? '',
    category: CATEGORY_ID.test(categoryValue) ? categoryValue : '',
    tag: (form.one('tag') ?? '').slice(0, 64),
    rating: RATINGS.find((rating) => rating === form.one('rating')) ?? '',
    sort,
    order: orderValue === 'asc' || orderValue === 'desc' ? orderValue : defaultOrder(sort),
    page: Math.max(1, Number.parseInt(form.one('page') ?? '1', 10) || 1),
    filePages: Math.min(MAX_FILE_PAGES, Math.max(1, Number.parseInt(form.one('files') ?? '1', 10) || 1)),
  };
}

function defaultOrder(sort: ArchiveSort): 'asc' | 'desc' {
  return sort === 'name' || sort === 'relevance' ? 'asc' : 'desc';
}

/** The archive service query for the page's query; values that do not parse are left out and named in the errors. */
function archiveFilter(i18n: I18n, query: ArchiveQuery): { filter: ArchiveListQuery; errors: QueryErrors } {
  const errors: QueryErrors = {};
  const filter: ArchiveListQuery = { sort: query.sort, order: query.order, limit: PAGE_SIZE, offset: (query.page - 1) * PAGE_SIZE };
  if (query.q.trim() !== '') filter.match = query.q;
  if (query.from !== '') {
    const from = parseDate(query.from);
    if (from) filter.from = from;
    else errors.from = i18n.t('archive.filter.date_invalid');
  }
  if (query.to !== '') {
    const to = parseDate(query.to);
    // The filter names a whole day: up to its last millisecond (the service's bound is inclusive).
    if (to) filter.to = new Date(to.getTime() + 86_400_000 - 1);
    else errors.to = i18n.t('archive.filter.date_invalid');
  }
  if (query.minSize !== '') {
    const min = parseMegabytes(query.minSize);
    if (min !== null) filter.minSizeBytes = min;
    else errors.minSize = i18n.t('archive.filter.size_invalid');
  }
  if (query.maxSize !== '') {
    const max = parseMegabytes(query.maxSize);
    if (max !== null) filter.maxSizeBytes = max;
    else errors.maxSize = i18n.t('archive.filter.size_invalid');
  }
  if (query.type !== '') filter.discKinds = [query.type as DiscKind];
  if (query.status !== '') filter.conditions = [query.status as ArchiveCondition];
  if (query.category !== '') filter.categoryId = query.category;
  if (query.tag.trim() !== '') filter.tag = query.tag;
  if (query.rating !== '') filter.minRating = Number(query.rating);
  return { filter, errors };
}

/** The query as link parameters (empty ones left out), for pagination and sort links. */
function queryParams(query: ArchiveQuery): Record<string, string | undefined> {
  const value = (text: string): string | undefined => (text === '' ? undefined : text);
  return {
    q: value(query.q),
    from: value(query.from),
    to: value(query.to),
    min_size: value(query.minSize),
    max_size: value(query.maxSize),
    type: value(query.type),
    status: value(query.status),
    category: value(query.category),
    tag: value(query.tag),
    rating: value(query.rating),
    sort: query.sort === (query.q.trim() === '' ? 'date' : 'relevance') ? undefined : query.sort,
    order: query.order === defaultOrder(query.sort) ? undefined : query.order,
  };
}

/** The checksum a card shows: the first the image has, in the drawing's order. */
function cardChecksum(archive: ArchiveView): { algorithm: string; value: string } | null {
  for (const algorithm of ['md5', 'sha256', 'sha1'] as const) {
    const value = archive.checksums[algorithm];
    if (value) return { algorithm, value };
  }
  return null;
}

interface MetadataForm {
  label: string;
  tags: string;
  notes: string;
  category: string;
  rating: string;
  /** One `key: value` per line. */
  fields: string;
}

function splitTags(text: string): string[] {
  return text
    .split(',')
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
}

/** `key: value` lines as custom fields; null when a line has no colon. */
function parseFieldLines(text: string): Record<string, string> | null {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/u)) {
    if (line.trim() === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    fields[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return fields;
}

function formOfArchive(archive: ArchiveView): MetadataForm {
  return {
    label: archive.metadata.label,
    tags: archive.metadata.tags.join(', '),
    notes: archive.metadata.notes,
    category: archive.metadata.category_id ?? '',
    rating: archive.metadata.rating === null ? '' : String(archive.metadata.rating),
    fields: Object.entries(archive.metadata.custom_fields)
      .map(([key, value]) => `${key}: ${value}`)
      .join('\n'),
  };
}

function validateMetadata(i18n: I18n, form: MetadataForm): { patch: ArchiveMetadata | null; errors: Partial<Record<keyof MetadataForm, string>> } {
  const errors: Partial<Record<keyof MetadataForm, string>> = {};
  const label = form.label.trim();
  const tags = [...new Set(splitTags(form.tags))];
  if ([...label].length > MAX_LABEL) errors.label = i18n.t('archive.edit.label_long', { max: MAX_LABEL });
  else if (CONTROL_CHARS.test(label)) errors.label = i18n.t('archive.edit.control_chars');
  if (tags.length > MAX_TAGS) errors.tags = i18n.t('archive.edit.tags_many', { max: MAX_TAGS });
  else if (tags.some((tag) => [...tag].length > MAX_TAG)) errors.tags = i18n.t('archive.edit.tag_long', { max: MAX_TAG });
  else if (tags.some((tag) => CONTROL_CHARS.test(tag))) errors.tags = i18n.t('archive.edit.control_chars');
  if ([...form.notes].length > MAX_NOTES) errors.notes = i18n.t('archive.edit.notes_long', { max: MAX_NOTES });
  if (form.category !== '' && !CATEGORY_ID.test(form.category)) errors.category = i18n.t('errors.unknown_category');
  if (form.rating !== '' && !RATINGS.some((rating) => rating === form.rating)) errors.rating = i18n.t('archive.edit.rating_invalid');
  const lines = parseFieldLines(form.fields);
  const customFields = lines === null ? null : cleanCustomFields(lines);
  if (customFields === null) errors.fields = i18n.t('archive.edit.fields_invalid', { ...CUSTOM_FIELD_LIMITS });
  if (Object.keys(errors).length > 0 || customFields === null) return { patch: null, errors };
  return {
    patch: {
      label,
      tags,
      notes: form.notes.replace(/\r\n/g, '\n'),
      categoryId: form.category === '' ? null : form.category,
      rating: form.rating === '' ? null : Number(form.rating),
      customFields,
    },
    errors,
  };
}

function categoryNames(categories: readonly CategoryView[]): (id: string | null) => string | null {
  const names = new Map(categories.map((category) => [category.id, category.name]));
  return (id) => (id === null ? null : (names.get(id) ?? null));
}

function checkedCategoryId(id: string): string {
  if (!CATEGORY_ID.test(id)) throw new NotFoundError('category_not_found', `no category ${id}`);
  return id;
}

function checkedArchiveId(id: string): string {
  if (!ARCHIVE_ID.test(id)) throw new NotFoundError('archive_not_found', `no archive ${id}`);
  return id;
}

function checkedTaskId(id: string): string {
  if (!TASK_ID.test(id)) throw new NotFoundError('verification_task_not_found', `no verification task ${id}`);
  return id;
}

function selectedIds(form: FormFields): string[] {
  const ids = [...new Set(form.all('ids'))];
  if (ids.length > MAX_BULK) throw new ValidationError('too_many_selected', `select at most ${MAX_BULK} archives`);
  return ids.map(checkedArchiveId);
}

export function registerArchivePages(app: App, deps: WebDeps): void {
  const { security, archives, catalogue } = deps;

  app.get('/archive', { config: { permission: 'archives:read' } }, async (request, reply) => {
    const i18n = requestI18n(request);
    const query = parseArchiveQuery(formFields(request.query));
    const { filter, errors } = archiveFilter(i18n, query);
    const [{ archives: items, total }, categories, view] = await Promise.all([
      archives.list(filter),
      catalogue.categories(),
      catalogue.viewOf(security.user(request).name),
    ]);
    const verifying = await archives.activeVerifications(items.map((item) => item.id));
    const files = await fileHits(query);
    const params = queryParams(query);
    const here = withParams('/archive', { ...params, page: query.page === 1 ? undefined : String(query.page) });
    return renderPage(request, reply, security, 'archive', {
      title: 'archive.title',
      query,
      errors,
      archives: items,
      pages: pagination(query.page, PAGE_SIZE, total),
      pageLink: (page: number) => withParams('/archive', { ...params, page: page === 1 ? undefined : String(page) }),
      filtered: Object.values({ ...params, sort: undefined, order: undefined }).some((value) => value !== undefined),
      discKinds: DISC_KINDS,
      statuses: ARCHIVE_CONDITIONS,
      sorts: query.q.trim() === '' ? SORTS.filter((sort) => sort !== 'relevance') : SORTS,
      ratings: RATINGS,
      categories,
      categoryName: categoryNames(categories),
      view,
      views: ARCHIVE_VIEWS,
      /** A column heading's link: sorts by it, or turns the order round when it is the current sort. */
      sortLink: (sort: ArchiveSort) =>
        withParams('/archive', {
          ...params,
          sort,
          order: query.sort === sort ? (query.order === 'asc' ? 'desc' : 'asc') : undefined,
        }),
      exportLink: (format: 'csv' | 'json') =>
        withParams('/api/v1/archives/export', {
          format,
          q: params.q,
          condition: params.status,
          category: params.category,
          tag: params.tag,
          min_rating: params.rating,
          sort: query.sort,
          order: query.order,
        }),
      checksumOf: cardChecksum,
      verifying: Object.fromEntries(verifying),
      files,
      moreFilesLink: `${withParams('/archive', { ...params, page: query.page === 1 ? undefined : String(query.page), files: String(query.filePages + 1) })}#files-results`,
      here,
    });
  });

  /**
   * The files whose name or path matches the page's words, best first, each with the folder it
   * lies in on its disc. One more than shown is asked for, to know whether there are more.
   */
  const fileHits = async (query: ArchiveQuery) => {
    if (!/[\p{L}\p{N}]/u.test(query.q)) return null;
    const shown = query.filePages * FILE_PAGE_SIZE;
    const { results } = await deps.archiveFiles.search(query.q, shown + 1);
    return {
      more: results.length > shown,
      hits: results.slice(0, shown).map((hit) => {
        const folder = hit.type === 'directory' ? hit.path : hit.path.split('/').slice(0, -1).join('/');
        return {
          ...hit,
          discName: hit.archive_label ?? hit.archive_filename,
          folderLink: `${withParams(`/archive/${hit.archive_id}`, { path: folder === '' ? undefined : folder })}#files-heading`,
        };
      }),
    };
  };

  const CATEGORIES_AUDIT = {
    create: { event_type: 'archive_category', action: 'create' },
    change: { event_type: 'archive_category', action: 'change' },
    delete: { event_type: 'archive_category', action: 'delete' },
  } as const satisfies Record<string, AuditedAction>;

  /** The admins' list of categories: add, rename, delete. */
  app.get('/archive/categories', { config: { permission: 'system:write' } }, async (request, reply) => {
    return renderPage(request, reply, security, 'archive-categories', { title: 'archive.categories.title', categories: await catalogue.categories() });
  });

  app.post('/archive/categories', { config: { permission: 'system:write', audit: CATEGORIES_AUDIT.create } }, async (request, reply) => {
    try {
      await catalogue.createCategory(formFields(request.body).one('name') ?? '');
      return actionDone(request, reply, 'category_saved', '/archive/categories');
    } catch (error) {
      request.auditDetails = null;
      return actionFailed(request, reply, error, '/archive/categories');
    }
  });

  app.post<{ Params: { id: string } }>(
    '/archive/categories/:id',
    { config: { permission: 'system:write', audit: CATEGORIES_AUDIT.change } },
    async (request, reply) => {
      try {
        await catalogue.renameCategory(checkedCategoryId(request.params.id), formFields(request.body).one('name') ?? '');
        return actionDone(request, reply, 'category_saved', '/archive/categories');
      } catch (error) {
        request.auditDetails = null;
        return actionFailed(request, reply, error, '/archive/categories');
      }
    },
  );

  app.post<{ Params: { id: string } }>(
    '/archive/categories/:id/delete',
    { config: { permission: 'system:write', audit: CATEGORIES_AUDIT.delete } },
    async (request, reply) => {
      try {
        await catalogue.deleteCategory(checkedCategoryId(request.params.id));
        return actionDone(request, reply, 'category_deleted', '/archive/categories');
      } catch (error) {
        request.auditDetails = null;
        return actionFailed(request, reply, error, '/archive/categories');
      }
    },
  );

  /** Reading a catalogue exported as JSON back in: the same import as the API's, from a pasted document. */
  app.get('/archive/import', { config: { permission: 'archives:write' } }, async (request, reply) => {
    return renderPage(request, reply, security, 'archive-import', {
      title: 'archive.import.title',
      document: '',
      error: null,
      report: null,
      maxChars: MAX_IMPORT_CHARS,
    });
  });

  app.post('/archive/import', { bodyLimit: IMPORT_BODY_LIMIT, config: { permission: 'archives:write', audit: ARCHIVE_IMPORT } }, async (request, reply) => {
    const i18n = requestI18n(request);
    const text = formFields(request.body).all('document')[0] ?? '';
    const refuse = (error: string) => {
      request.auditDetails = null;
      return renderPage(
        request,
        reply,
        security,
        'archive-import',
        { title: 'archive.import.title', document: text, error, report: null, maxChars: MAX_IMPORT_CHARS },
        400,
      );
    };
    if (text.trim() === '') return refuse(i18n.t('archive.import.empty'));
    if (text.length > MAX_IMPORT_CHARS) return refuse(i18n.t('archive.import.too_long', { max: i18n.fmt.number(MAX_IMPORT_CHARS) }));
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      return refuse(i18n.t('archive.import.not_json', { detail: error instanceof Error ? error.message : String(error) }));
    }
    const checked = checkCatalogueDocument(parsed);
    if ('problem' in checked) return refuse(i18n.t('archive.import.not_catalogue', { detail: checked.problem }));
    try {
      const report = await catalogue.importCatalogue(checked.document);
      request.auditDetails = { created: report.created, updated: report.updated, skipped: report.skipped, categories_created: report.categories_created };
      return renderPage(request, reply, security, 'archive-import', {
        title: 'archive.import.title',
        document: '',
        error: null,
        report,
        maxChars: MAX_IMPORT_CHARS,
      });
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      return refuse(userMessage(i18n, error));
    }
  });

  /** The card or table view is the user's, kept on the server so it follows them to every device. */
  app.post('/archive/view', { config: { permission: 'archives:read' } }, async (request, reply) => {
    const returnTo = returnPath(request, '/archive');
    const chosen = formFields(request.body).one('view');
    const view = ARCHIVE_VIEWS.find((candidate) => candidate === chosen);
    if (view === undefined) return actionFailed(request, reply, new ValidationError('invalid_action', 'unknown view'), returnTo);
    await catalogue.setView(security.user(request).name, view);
    return reply.redirect(returnTo, 303);
  });

  const renderDetail = async (
    request: FastifyRequest,
    reply: FastifyReply,
    id: string,
    form: MetadataForm | null,
    errors: Record<string, string>,
    status: number,
  ) => {
    const [archive, verification, categories] = await Promise.all([archives.get(id), verificationState(id), catalogue.categories()]);
    const duplicates = await Promise.all((archive.duplicates ?? []).map((other) => archives.get(other)));
    const folder = await folderOf(request, id);
    // Where sectors stayed unreadable, the rescue map kept beside the image shows where they lie.
    const sectorMap = archive.bad_bytes > 0 ? await readSectorMap(archive.path) : null;
    // Recovery work on this image runs in the background: the page says how far it is.
    const { tasks } = await deps.integrity.recovery.tasks({ archiveId: id, limit: 1, offset: 0 });
    const recoveryTask = tasks.find((task) => task.status === 'queued' || task.status === 'running') ?? null;
    return renderPage(
      request,
      reply,
      security,
      'archive-detail',
      {
        title: 'archive.detail.title',
        archive,
        ...verification,
        form: form ?? formOfArchive(archive),
        errors,
        categories,
        categoryName: categoryNames(categories),
        ratings: RATINGS,
        duplicates,
        folder,
        sectorMap,
        recoveryTask,
      },
      status,
    );
  };

  /**
   * The folder of the image the page shows (`?path=`, the root by default), with its breadcrumbs
   * and the links of its entries. An image that cannot be read shows why instead of failing the page.
   */
  const folderOf = async (request: FastifyRequest, id: string) => {
    const query = request.query as { path?: unknown };
    const path = typeof query.path === 'string' ? query.path : '';
    const names = path.split('/').filter((name) => name !== '');
    const crumbs = names.map((name, index) => ({ name, path: names.slice(0, index + 1).join('/') }));
    const api = `/api/v1/archives/${id}/files`;
    try {
      const listing = await deps.archiveFiles.list(id, path);
      const prefix = listing.path === '' ? '' : `${listing.path}/`;
      return {
        path: listing.path,
        crumbs,
        tar: withParams(`${api}/archive`, { path: listing.path }),
        error: null,
        entries: listing.entries.map((entry) => ({
          ...entry,
          href:
            entry.type === 'directory'
              ? `${withParams(`/archive/${id}`, { path: `${prefix}${entry.name}` })}#files-heading`
              : withParams(`${api}/content`, { path: `${prefix}${entry.name}` }),
          tar: entry.type === 'directory' ? withParams(`${api}/archive`, { path: `${prefix}${entry.name}` }) : null,
        })),
      };
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      return { path, crumbs, tar: null, entries: [], error: userMessage(requestI18n(request), error) };
    }
  };

  /** The history, and the latest task: running or queued, or how the last one ended when it added nothing to the history. */
  const verificationState = async (id: string) => {
    const [history, latest] = await Promise.all([
      archives.verifications(id, { limit: HISTORY_LIMIT, offset: 0 }),
      archives.verificationTasks({ archiveId: id, limit: 1, offset: 0 }),
    ]);
    const task = latest.tasks[0];
    return { history: history.verifications, task: task !== undefined && task.status !== 'completed' ? task : null };
  };

  app.get<{ Params: { id: string } }>('/archive/:id', { config: { permission: 'archives:read' } }, async (request, reply) => {
    return renderDetail(request, reply, checkedArchiveId(request.params.id), null, {}, 200);
  });

  app.post<{ Params: { id: string } }>('/archive/:id', { config: { permission: 'archives:write', audit: ARCHIVE_EDIT } }, async (request, reply) => {
    const id = checkedArchiveId(request.params.id);
    const fields = formFields(request.body);
    const form: MetadataForm = {
      label: fields.one('label') ?? '',
      tags: fields.one('tags') ?? '',
      notes: fields.all('notes')[0] ?? '',
      category: fields.one('category') ?? '',
      rating: fields.one('rating') ?? '',
      fields: fields.all('custom_fields')[0] ?? '',
    };
    const { patch, errors } = validateMetadata(requestI18n(request), form);
    if (patch === null) return renderDetail(request, reply, id, form, errors, 400);
    await archives.updateMetadata(id, patch);
    return reply.redirect(withParams(`/archive/${id}`, { notice: 'archive_saved' }), 303);
  });

  app.get<{ Params: { id: string } }>('/archive/:id/verification', { config: { permission: 'archives:read' } }, async (request, reply) => {
    const id = checkedArchiveId(request.params.id);
    const [archive, verification] = await Promise.all([archives.get(id), verificationState(id)]);
    return renderFragment(request, reply, security, 'partials/archive-verification', { archive, ...verification });
  });

  app.post<{ Params: { id: string } }>('/archive/:id/verify', { config: { permission: 'archives:write' } }, async (request, reply) => {
    const id = checkedArchiveId(request.params.id);
    const returnTo = returnPath(request, `/archive/${id}`);
    try {
      await archives.startVerification(id, security.user(request).name);
      return actionDone(request, reply, 'archive_verification_started', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });

  app.post<{ Params: { task: string } }>('/archive/verification/:task/cancel', { config: { permission: 'archives:write' } }, async (request, reply) => {
    const returnTo = returnPath(request, '/archive');
    try {
      const task = await archives.cancelVerification(checkedTaskId(request.params.task));
      return actionDone(request, reply, task.status === 'running' ? 'archive_verification_stopping' : 'archive_verification_cancelled', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });

  app.get<{ Params: { id: string } }>('/archive/:id/delete', { config: { permission: 'archives:write' } }, async (request, reply) => {
    const archive = await archives.get(checkedArchiveId(request.params.id));
    return renderPage(request, reply, security, 'archive-delete', { title: 'archive.delete.title', selection: [archive] });
  });

  app.post<{ Params: { id: string } }>('/archive/:id/delete', { config: { permission: 'archives:write', audit: ARCHIVE_DELETE } }, async (request, reply) => {
    await archives.remove(checkedArchiveId(request.params.id));
    return reply.redirect(withParams('/archive', { notice: 'archive_deleted' }), 303);
  });

  /** Bulk verify queues one background task per image; bulk delete first shows what would go, like a single delete. */
  app.post('/archive/bulk', { config: { permission: 'archives:write' } }, async (request, reply) => {
    const fields = formFields(request.body);
    const returnTo = returnPath(request, '/archive');
    try {
      const ids = selectedIds(fields);
      if (ids.length === 0) throw new ValidationError('nothing_selected', 'select at least one archive');
      if (fields.one('action') === 'delete') {
        const selection = await Promise.all(ids.map((id) => archives.get(id)));
        return renderPage(request, reply, security, 'archive-delete', { title: 'archive.delete.title', selection, returnTo });
      }
      if (fields.one('action') !== 'verify') throw new ValidationError('invalid_action', 'unknown action');
      const { refused } = await archives.startVerifications({ ids }, security.user(request).name);
      // One already being verified is as good as queued.
      const failed = refused.filter((entry) => entry.error.code !== 'verification_running');
      if (failed.length > 0) {
        throw new ConflictError('bulk_verification_failed', `${failed.length} of ${ids.length} images could not be queued for verification`, {
          refused: failed.map((entry) => ({ archive_id: entry.archive_id, code: entry.error.code })),
        });
      }
      return actionDone(request, reply, 'archives_verification_started', returnTo);
    } catch (error) {
      return actionFailed(request, reply, error, returnTo);
    }
  });

  /** Tags added and removed, category and rating set on every selected image at once; empty fields leave that part alone. */
  app.post('/archive/bulk-edit', { config: { permission: 'archives:write', audit: ARCHIVE_BULK_EDIT } }, async (request, reply) => {
    const fields = formFields(request.body);
    const returnTo = returnPath(request, '/archive');
    try {
      const ids = selectedIds(fields);
      if (ids.length === 0) throw new ValidationError('nothing_selected', 'select at least one archive');
      const edit = bulkEditOf(fields);
      if (edit === null) throw new ValidationError('validation_failed', 'tags, category or rating are not valid', { fields: ['tags', 'category', 'rating'] });
      await catalogue.bulkEdit(ids, edit);
      request.auditDetails = { ids, ...edit };
      return actionDone(request, reply, 'archives_edited', returnTo);
    } catch (error) {
      request.auditDetails = null;
      return actionFailed(request, reply, error, returnTo);
    }
  });

  app.post('/archive/bulk-delete', { config: { permission: 'archives:write', audit: ARCHIVE_DELETE } }, async (request, reply) => {
    const returnTo = returnPath(request, '/archive');
    const deleted: string[] = [];
    // The form's answer is a redirect either way: the trail records the images that did go, also when a later one failed.
    const recordDeleted = (): void => {
      request.auditDetails = deleted.length === 0 ? null : { ids: deleted };
    };
    try {
      for (const id of selectedIds(formFields(request.body))) {
        await archives.remove(id);
        deleted.push(id);
      }
      recordDeleted();
      return actionDone(request, reply, 'archives_deleted', returnTo);
    } catch (error) {
      recordDeleted();
      return actionFailed(request, reply, error, returnTo);
    }
  });
}
