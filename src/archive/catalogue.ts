import { isAbsolute, normalize } from 'node:path';
import type { ArchiveRepository, BulkMetadataChange } from '../db/archive-repository.js';
import type { CategoryRepository, PreferenceRepository } from '../db/catalogue-repository.js';
import { NotFoundError, ValidationError } from '../errors.js';
import type { ArchiveCategory, ArchiveRecord } from './model.js';
import { isStrictlyInside } from './naming.js';
import { type ArchiveListQuery, type ArchiveService, type ArchiveView, checkedCustomFields, normaliseTags } from './service.js';

/** How the archive page lists images; each user's choice is remembered on the server. */
export const ARCHIVE_VIEWS = ['cards', 'table'] as const;
type ArchiveViewMode = (typeof ARCHIVE_VIEWS)[number];
const VIEW_PREFERENCE = 'archive.view';

export const CATALOGUE_FORMAT = 'disk2iso-catalogue';
export const CATALOGUE_VERSION = 1;

/** One archive as an export carries it and an import reads it back. */
export interface CatalogueEntry {
  filename: string;
  path: string;
  size_bytes: number;
  created_at: string;
  checksums: Partial<Record<'md5' | 'sha1' | 'sha256', string>>;
  metadata: { label: string; tags: string[]; notes: string; category: string | null; rating: number | null; custom_fields: Record<string, string> };
  source: ArchiveView['source'];
  status: ArchiveView['status'];
  bad_bytes: number;
}

interface CatalogueDocument {
  format: typeof CATALOGUE_FORMAT;
  version: typeof CATALOGUE_VERSION;
  exported_at?: string;
  categories: string[];
  archives: CatalogueEntry[];
}

interface ImportOutcome {
  index: number;
  action: 'created' | 'updated' | 'skipped';
  archive_id: string | null;
  /** Why an entry was skipped: unchanged, or outside_output_dir. */
  reason?: 'unchanged' | 'outside_output_dir';
}

interface ImportReport {
  created: number;
  updated: number;
  skipped: number;
  categories_created: number;
  entries: ImportOutcome[];
}

export interface CategoryView {
  id: string;
  name: string;
  created_at: string;
}

interface BulkEdit {
  add_tags?: string[] | undefined;
  remove_tags?: string[] | undefined;
  category_id?: string | null | undefined;
  rating?: number | null | undefined;
}

export interface CatalogueService {
  categories(): Promise<CategoryView[]>;
  createCategory(name: string): Promise<CategoryView>;
  renameCategory(id: string, name: string): Promise<CategoryView>;
  deleteCategory(id: string): Promise<void>;
  /** One change to several archives, all or nothing; returns how many were changed. */
  bulkEdit(ids: readonly string[], edit: BulkEdit): Promise<number>;
  /** Every archive the query finds, page by page in its order, as an export writes them. */
  entries(query: Omit<ArchiveListQuery, 'limit' | 'offset'>): AsyncGenerator<CatalogueEntry>;
  /**
   * Reads an export back: an entry matches an archive by path, else by SHA-256 (when exactly one
   * has it); a match gets the entry's description, an unknown image inside the output directory is
   * added to the catalogue. Files are never touched.
   */
  importCatalogue(document: CatalogueDocument): Promise<ImportReport>;
  viewOf(userName: string): Promise<ArchiveViewMode>;
  setView(userName: string, view: ArchiveViewMode): Promise<void>;
}

export interface CatalogueServiceDeps {
  /** Read at each import: the output folder may change while the service runs. */
  outputDir: () => string;
  archives: ArchiveRepository;
  archiveService: Pick<ArchiveService, 'list'>;
  categories: CategoryRepository;
  preferences: PreferenceRepository;
}

const EXPORT_PAGE = 500;
const MAX_CATEGORY_NAME = 100;

function toCategoryView(category: ArchiveCategory): CategoryView {
  return { id: category.id, name: category.name, created_at: category.createdAt };
}

/** Category names are single-line text; spacing is tidied so `Films ` and `Films` are one name. */
function categoryName(name: string): string {
  const tidy = name.normalize('NFC').trim().replace(/\s+/gu, ' ');
  if (tidy === '' || [...tidy].length > MAX_CATEGORY_NAME || /[\u0000-\u001f\u007f-\u009f]/u.test(tidy)) {
    throw new ValidationError('validation_failed', `a category needs a name of 1 to ${MAX_CATEGORY_NAME} characters, without control characters`, {
      fields: ['name'],
    });
  }
  return tidy;
}

function sameMetadata(record: ArchiveRecord, wanted: ArchiveRecord['metadata']): boolean {
  const a = record.metadata;
  return (
    a.label === wanted.label &&
    a.notes === wanted.notes &&
    a.categoryId === wanted.categoryId &&
    a.rating === wanted.rating &&
    JSON.stringify(a.tags) === JSON.stringify(wanted.tags) &&
    JSON.stringify(a.customFields) === JSON.stringify(wanted.customFields)
  );
}

export function createCatalogueService(deps: CatalogueServiceDeps): CatalogueService {
  const { archives, categories, preferences } = deps;

  const categoryNames = async (): Promise<Map<string, string>> => new Map((await categories.list()).map((category) => [category.id, category.name]));

  return {
    categories: async () => (await categories.list()).map(toCategoryView),
    createCategory: async (name) => toCategoryView(await categories.create(categoryName(name))),
    renameCategory: async (id, name) => toCategoryView(await categories.rename(id, categoryName(name))),
    async deleteCategory(id) {
      if (!(await categories.delete(id))) throw new NotFoundError('category_not_found', `no category ${id}`, { category_id: id });
    },

    async bulkEdit(ids, edit) {
      const change: BulkMetadataChange = {};
      if (edit.add_tags !== undefined) change.addTags = normaliseTags(edit.add_tags);
      if (edit.remove_tags !== undefined) change.removeTags = normaliseTags(edit.remove_tags);
      if (edit.category_id !== undefined) change.categoryId = edit.category_id;
      if (edit.rating !== undefined) change.rating = edit.rating;
      return archives.bulkUpdateMetadata(ids, change);
    },

    async *entries(query) {
      const names = await categoryNames();
      for (let offset = 0; ; offset += EXPORT_PAGE) {
        const { archives: page } = await deps.archiveService.list({ ...query, limit: EXPORT_PAGE, offset });
        for (const view of page) {
          const { category_id, ...metadata } = view.metadata;
          yield {
            filename: view.filename,
            path: view.path,
            size_bytes: view.size_bytes,
            created_at: view.created_at,
            checksums: view.checksums,
            metadata: { ...metadata, category: category_id === null ? null : (names.get(category_id) ?? null) },
            source: view.source,
            status: view.status,
            bad_bytes: view.bad_bytes,
          };
        }
        if (page.length < EXPORT_PAGE) return;
      }
    },

    async importCatalogue(document) {
      // Checked as a whole first: a document with one bad entry changes nothing.
      const customFields = document.archives.map((entry) => checkedCustomFields(entry.metadata.custom_fields));
      const report: ImportReport = { created: 0, updated: 0, skipped: 0, categories_created: 0, entries: [] };
      const byName = new Map((await categories.list()).map((category) => [category.name.toLowerCase(), category.id]));
      const wantedNames = [
        ...document.categories,
        ...document.archives.flatMap((entry) => (entry.metadata.category === null ? [] : [entry.metadata.category])),
      ];
      for (const name of wantedNames.map(categoryName)) {
        if (byName.has(name.toLowerCase())) continue;
        byName.set(name.toLowerCase(), (await categories.create(name)).id);
        report.categories_created++;
      }
      for (const [index, entry] of document.archives.entries()) {
        const category = entry.metadata.category;
        const metadata: ArchiveRecord['metadata'] = {
          label: entry.metadata.label.trim(),
          tags: normaliseTags(entry.metadata.tags),
          notes: entry.metadata.notes,
          categoryId: category === null ? null : (byName.get(categoryName(category).toLowerCase()) ?? null),
          rating: entry.metadata.rating,
          customFields: customFields[index] ?? {},
        };
        let existing = await archives.getByPath(entry.path);
        if (existing === null && entry.checksums.sha256 !== undefined) {
          const same = (await archives.withSha256([entry.checksums.sha256])).get(entry.checksums.sha256) ?? [];
          if (same.length === 1) existing = same[0] ?? null;
        }
        if (existing !== null) {
          if (sameMetadata(existing, metadata)) {
            report.skipped++;
            report.entries.push({ index, action: 'skipped', archive_id: existing.id, reason: 'unchanged' });
          } else {
            await archives.updateMetadata(existing.id, metadata);
            report.updated++;
            report.entries.push({ index, action: 'updated', archive_id: existing.id });
          }
          continue;
        }
        // A new record only for an image in our own output directory; the file is not read or moved.
        if (!isAbsolute(entry.path) || normalize(entry.path) !== entry.path || !isStrictlyInside(deps.outputDir(), entry.path)) {
          report.skipped++;
          report.entries.push({ index, action: 'skipped', archive_id: null, reason: 'outside_output_dir' });
          continue;
        }
        const created = await archives.create({
          filename: entry.filename,
          path: entry.path,
          sizeBytes: entry.size_bytes,
          createdAt: new Date(entry.created_at),
          checksums: entry.checksums,
          metadata,
          source: {
            deviceId: entry.source.device_id,
            devicePath: entry.source.device_path,
            discKind: entry.source.disc_kind,
            volumeLabel: entry.source.volume_label,
            volumeId: entry.source.volume_id,
            mediaType: entry.source.media_type,
            fileSystems: entry.source.file_systems,
          },
          badBytes: entry.bad_bytes,
          status: entry.status,
        });
        report.created++;
        report.entries.push({ index, action: 'created', archive_id: created.id });
      }
      return report;
    },

    async viewOf(userName) {
      const stored = await preferences.get(userName, VIEW_PREFERENCE);
      return ARCHIVE_VIEWS.find((view) => view === stored) ?? 'cards';
    },
    setView: (userName, view) => preferences.set(userName, VIEW_PREFERENCE, view),
  };
}

/** Cells a spreadsheet would run as a formula start with one of these; an apostrophe makes them text. */
const FORMULA_START = /^[=+\-@\t\r]/u;

/** One RFC 4180 field: always quoted, quotes doubled, and never a formula. */
export function csvCell(value: string | number | null): string {
  const text = value === null ? '' : String(value);
  const safe = FORMULA_START.test(text) ? `'${text}` : text;
  return `"${safe.replaceAll('"', '""')}"`;
}

export const CSV_COLUMNS = [
  'title',
  'filename',
  'volume_label',
  'path',
  'size_bytes',
  'created_at',
  'status',
  'category',
  'rating',
  'tags',
  'notes',
  'custom_fields',
  'md5',
  'sha1',
  'sha256',
] as const;

export function csvRow(entry: CatalogueEntry): string {
  const cells = [
    entry.metadata.label,
    entry.filename,
    entry.source.volume_label,
    entry.path,
    entry.size_bytes,
    entry.created_at,
    entry.status,
    entry.metadata.category,
    entry.metadata.rating,
    entry.metadata.tags.join(', '),
    entry.metadata.notes,
    Object.keys(entry.metadata.custom_fields).length === 0 ? '' : JSON.stringify(entry.metadata.custom_fields),
    entry.checksums.md5 ?? '',
    entry.checksums.sha1 ?? '',
    entry.checksums.sha256 ?? '',
  ];
  return `${cells.map(csvCell).join(',')}\r\n`;
}
