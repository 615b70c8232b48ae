import { Readable } from 'node:stream';
import Type, { type Static } from 'typebox';
import { Compile } from 'typebox/compile';
import { CATALOGUE_FORMAT, CATALOGUE_VERSION, CSV_COLUMNS, type CatalogueService, csvCell, csvRow } from '../../archive/catalogue.js';
import { ARCHIVE_CONDITIONS, ARCHIVE_STATUSES, type ArchiveCondition } from '../../archive/model.js';
import type { ArchiveListQuery, ArchiveService } from '../../archive/service.js';
import { HASH_ALGORITHMS } from '../../config/schema.js';
import { DISC_KINDS, FILE_SYSTEM_KINDS, MEDIA_TYPES } from '../../drives/types.js';
import type { App } from '../app.js';
import { Archive, ArchiveId, Limit, Nullable, Offset, SortOrder, errors } from '../schemas.js';

/** Printable single-line text: what ends up in HTML, CSV exports and file listings. */
const SingleLine = (maxLength: number, minLength = 0) => Type.String({ minLength, maxLength, pattern: '^[^\\u0000-\\u001f\\u007f]*$' });

const MAX_TAGS = 50;
const MAX_CUSTOM_FIELDS = 20;
const MAX_FIELD_KEY = 40;
const MAX_FIELD_VALUE = 500;

const Tag = Type.String({ minLength: 1, maxLength: 64, pattern: '^[^\\u0000-\\u001f\\u007f,]*$' });
const Tags = Type.Array(Tag, { maxItems: MAX_TAGS });
const Rating = Type.Integer({ minimum: 1, maximum: 5 });
const CategoryId = Type.String({ pattern: '^category_[a-z0-9]{1,64}$', description: 'Category id from GET /api/v1/archive-categories' });
const CustomFields = Type.Record(Type.String({ pattern: `^[^\\u0000-\\u001f\\u007f]{1,${MAX_FIELD_KEY}}$` }), SingleLine(MAX_FIELD_VALUE), {
  maxProperties: MAX_CUSTOM_FIELDS,
  description: `Free key/value pairs: at most ${MAX_CUSTOM_FIELDS}, keys up to ${MAX_FIELD_KEY} characters, values up to ${MAX_FIELD_VALUE}`,
});
const Notes = Type.String({ maxLength: 10_000, pattern: '^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$' });

/** The metadata a PATCH may change; shared with the archive routes. */
export const MetadataPatch = Type.Object(
  {
    label: Type.Optional(SingleLine(200)),
    tags: Type.Optional(Tags),
    notes: Type.Optional(Notes),
    category_id: Type.Optional(Nullable(CategoryId)),
    rating: Type.Optional(Nullable(Rating)),
    custom_fields: Type.Optional(CustomFields),
  },
  { additionalProperties: false },
);

export function metadataPatchOf(body: Static<typeof MetadataPatch>) {
  return {
    ...(body.label === undefined ? {} : { label: body.label }),
    ...(body.tags === undefined ? {} : { tags: body.tags }),
    ...(body.notes === undefined ? {} : { notes: body.notes }),
    ...(body.category_id === undefined ? {} : { categoryId: body.category_id }),
    ...(body.rating === undefined ? {} : { rating: body.rating }),
    ...(body.custom_fields === undefined ? {} : { customFields: body.custom_fields }),
  };
}

const listOf = (values: readonly string[]) => `^(${values.join('|')})(,(${values.join('|')}))*$`;

const SearchQuery = {
  q: Type.Optional(
    Type.String({ maxLength: 200, description: 'Words (prefixes) that must all occur in the name, label, volume label, tags, notes or custom field values' }),
  ),
  condition: Type.Optional(
    Type.String({ pattern: listOf(ARCHIVE_CONDITIONS), description: `One badge condition or a comma-separated list: ${ARCHIVE_CONDITIONS.join(', ')}` }),
  ),
  category: Type.Optional(CategoryId),
  tag: Type.Optional(Tag),
  min_rating: Type.Optional(Rating),
  sort: Type.Optional(Type.Enum(['relevance', 'name', 'date', 'size', 'rating'], { description: 'Default: relevance with q, else date' })),
  order: Type.Optional(SortOrder),
};

function searchOf(query: { q?: string; condition?: string; category?: string; tag?: string; min_rating?: number; sort?: string; order?: 'asc' | 'desc' }) {
  const search: Omit<ArchiveListQuery, 'limit' | 'offset'> = {};
  if (query.q !== undefined && query.q.trim() !== '') search.match = query.q;
  if (query.condition !== undefined) search.conditions = query.condition.split(',') as ArchiveCondition[];
  if (query.category !== undefined) search.categoryId = query.category;
  if (query.tag !== undefined) search.tag = query.tag;
  if (query.min_rating !== undefined) search.minRating = query.min_rating;
  if (query.sort !== undefined) search.sort = query.sort as NonNullable<ArchiveListQuery['sort']>;
  if (query.order !== undefined) search.order = query.order;
  return search;
}

const CatalogueEntrySchema = Type.Object(
  {
    filename: SingleLine(255, 1),
    path: SingleLine(4096, 1),
    size_bytes: Type.Integer({ minimum: 0 }),
    created_at: Type.String({ format: 'date-time' }),
    checksums: Type.Object(Object.fromEntries(HASH_ALGORITHMS.map((algorithm) => [algorithm, Type.Optional(Type.String({ pattern: '^[0-9a-f]{32,128}$' }))])), {
      additionalProperties: false,
    }),
    metadata: Type.Object(
      {
        label: SingleLine(200),
        tags: Tags,
        notes: Notes,
        category: Nullable(SingleLine(100, 1)),
        rating: Nullable(Rating),
        custom_fields: CustomFields,
      },
      { additionalProperties: false },
    ),
    source: Type.Object(
      {
        device_id: Nullable(SingleLine(200)),
        device_path: Nullable(SingleLine(4096)),
        disc_kind: Nullable(Type.Enum([...DISC_KINDS])),
        volume_label: Nullable(SingleLine(200)),
        volume_id: Nullable(SingleLine(200)),
        media_type: Nullable(Type.Enum([...MEDIA_TYPES])),
        file_systems: Type.Array(Type.Enum([...FILE_SYSTEM_KINDS]), { maxItems: 10 }),
      },
      { additionalProperties: false },
    ),
    status: Type.Enum([...ARCHIVE_STATUSES]),
    bad_bytes: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);

const MAX_IMPORT = 100_000;
const CatalogueDocumentSchema = Type.Object(
  {
    format: Type.Literal(CATALOGUE_FORMAT),
    version: Type.Literal(CATALOGUE_VERSION),
    exported_at: Type.Optional(Type.String({ format: 'date-time' })),
    categories: Type.Array(SingleLine(100, 1), { maxItems: 1000 }),
    archives: Type.Array(CatalogueEntrySchema, { maxItems: MAX_IMPORT }),
  },
  { additionalProperties: false },
);

const catalogueDocument = Compile(CatalogueDocumentSchema);

/**
 * A catalogue document checked as the import endpoint checks its body, for the import form of the
 * pages; when it is not one, where and what the first problem is.
 */
export function checkCatalogueDocument(value: unknown): { document: Static<typeof CatalogueDocumentSchema> } | { problem: string } {
  if (catalogueDocument.Check(value)) return { document: value };
  const [first] = catalogueDocument.Errors(value);
  return { problem: first === undefined ? 'not a catalogue document' : `${first.instancePath === '' ? '/' : first.instancePath}: ${first.message}` };
}

const Category = Type.Object({ id: CategoryId, name: Type.String(), created_at: Type.String() }, { additionalProperties: false });
const CategoryBody = Type.Object({ name: SingleLine(100, 1) }, { additionalProperties: false });
const CategoryParams = Type.Object({ category_id: CategoryId }, { additionalProperties: false });
const MAX_BULK_IDS = 500;
/** An import of many thousand described images is larger than the API's usual body limit. */
const IMPORT_BODY_LIMIT = 64 * 1024 * 1024;

/** Where an export begins: the document's fixed fields, then the archives one by one. */
function jsonHead(categories: string[]): string {
  return `{"format":${JSON.stringify(CATALOGUE_FORMAT)},"version":${CATALOGUE_VERSION},"exported_at":${JSON.stringify(new Date().toISOString())},"categories":${JSON.stringify(categories)},"archives":[`;
}

export function catalogueRoutes(archives: ArchiveService, catalogue: CatalogueService) {
  return (app: App): void => {
    app.get(
      '/api/v1/archives/search',
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'Find discs: full-text search with filters, best match first',
          description:
            'Searches the name, label, volume label, tags, notes and custom field values (SQLite FTS5, or in the cluster mode PostgreSQL’s full-text search; each word a prefix, all words must occur, ranked by bm25 or ts_rank with label and tag hits weighing most; PostgreSQL also folds `ß` to `ss`). Filters by badge condition, category, tag and minimum rating. File names inside images are not searched here.',
          querystring: Type.Object({ ...SearchQuery, limit: Type.Optional(Limit(50, 500)), offset: Type.Optional(Offset) }, { additionalProperties: false }),
          response: {
            200: Type.Object(
              { archives: Type.Array(Archive), total: Type.Integer(), limit: Type.Integer(), offset: Type.Integer() },
              { additionalProperties: false },
            ),
            ...errors(400),
          },
        },
      },
      async (request) => archives.list({ ...searchOf(request.query), limit: request.query.limit ?? 50, offset: request.query.offset ?? 0 }),
    );

    app.post(
      '/api/v1/archives/bulk-edit',
      {
        config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'bulk_edit' } },
        schema: {
          tags: ['archives'],
          summary: 'Change several archives at once',
          description: `Adds and removes tags, sets the category and the rating (null clears them) of the archives in \`ids\` (at most ${MAX_BULK_IDS}), all in one transaction: an unknown id changes nothing (404).`,
          body: Type.Object(
            {
              ids: Type.Array(ArchiveId, { minItems: 1, maxItems: MAX_BULK_IDS }),
              add_tags: Type.Optional(Tags),
              remove_tags: Type.Optional(Tags),
              category_id: Type.Optional(Nullable(CategoryId)),
              rating: Type.Optional(Nullable(Rating)),
            },
            { additionalProperties: false },
          ),
          response: { 200: Type.Object({ updated: Type.Integer() }, { additionalProperties: false }), ...errors(400, 404, 413, 415) },
        },
      },
      async (request) => {
        const { ids, ...edit } = request.body;
        const updated = await catalogue.bulkEdit(ids, edit);
        request.auditDetails = {
          ids,
          updated,
          ...(edit.add_tags === undefined ? {} : { add_tags: edit.add_tags }),
          ...(edit.remove_tags === undefined ? {} : { remove_tags: edit.remove_tags }),
          ...(edit.category_id === undefined ? {} : { category_id: edit.category_id }),
          ...(edit.rating === undefined ? {} : { rating: edit.rating }),
        };
        return { updated };
      },
    );

    app.get(
      '/api/v1/archives/export',
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'Export the catalogue (all, or a search result) as CSV or JSON',
          description:
            'Streamed. CSV is RFC 4180 (every field quoted, CRLF), UTF-8 with a byte order mark; a cell starting with =, +, -, @, tab or CR is prefixed with an apostrophe so spreadsheets never run it as a formula. JSON is the document POST /api/v1/archives/import reads back. The same search parameters as /api/v1/archives/search choose what is exported.',
          querystring: Type.Object({ ...SearchQuery, format: Type.Optional(Type.Enum(['csv', 'json'], { default: 'json' })) }, { additionalProperties: false }),
          response: { 200: Type.Unknown({ description: 'text/csv or application/json, streamed' }), ...errors(400) },
        },
      },
      async (request, reply) => {
        const format = request.query.format ?? 'json';
        const iterator = catalogue.entries(searchOf(request.query));
        // The first page is read before the answer starts: a query that fails gets an error answer, not a cut-off file.
        const head = await iterator.next();
        const categories = (await catalogue.categories()).map((category) => category.name);
        async function* entries() {
          if (head.done === true) return;
          yield head.value;
          yield* iterator;
        }
        async function* body(): AsyncGenerator<string> {
          if (format === 'csv') {
            yield `\ufeff${CSV_COLUMNS.map(csvCell).join(',')}\r\n`;
            for await (const entry of entries()) yield csvRow(entry);
            return;
          }
          yield jsonHead(categories);
          let first = true;
          for await (const entry of entries()) {
            yield `${first ? '' : ','}\n${JSON.stringify(entry)}`;
            first = false;
          }
          yield '\n]}\n';
        }
        const stamp = new Date().toISOString().slice(0, 10);
        return reply
          .header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/json; charset=utf-8')
          .header('content-disposition', `attachment; filename="disk2iso-catalogue-${stamp}.${format}"`)
          .send(Readable.from(body()));
      },
    );

    app.post(
      '/api/v1/archives/import',
      {
        bodyLimit: IMPORT_BODY_LIMIT,
        config: { permission: 'archives:write', audit: { event_type: 'archive', action: 'import' } },
        schema: {
          tags: ['archives'],
          summary: 'Import a catalogue exported as JSON (moving to a new machine)',
          description:
            'The whole document is validated first; an invalid one changes nothing (400). Each entry matches an archive by path, else by SHA-256 when exactly one archive has it; a match gets the entry’s label, tags, notes, category, rating and custom fields (unchanged ones are skipped). An entry matching nothing becomes a new record only when its path lies inside the output directory; image files are never read, written or moved. Missing categories are created. Importing the same document twice changes nothing the second time.',
          body: CatalogueDocumentSchema,
          response: {
            200: Type.Object(
              {
                created: Type.Integer(),
                updated: Type.Integer(),
                skipped: Type.Integer(),
                categories_created: Type.Integer(),
                entries: Type.Array(
                  Type.Object(
                    {
                      index: Type.Integer(),
                      action: Type.Enum(['created', 'updated', 'skipped']),
                      archive_id: Nullable(ArchiveId),
                      reason: Type.Optional(Type.Enum(['unchanged', 'outside_output_dir'])),
                    },
                    { additionalProperties: false },
                  ),
                ),
              },
              { additionalProperties: false },
            ),
            ...errors(400, 413, 415),
          },
        },
      },
      async (request) => {
        const report = await catalogue.importCatalogue(request.body);
        request.auditDetails = { created: report.created, updated: report.updated, skipped: report.skipped, categories_created: report.categories_created };
        return report;
      },
    );

    app.get(
      '/api/v1/archive-categories',
      {
        config: { permission: 'archives:read' },
        schema: {
          tags: ['archives'],
          summary: 'The categories archives can be put in, by name',
          response: { 200: Type.Object({ categories: Type.Array(Category) }, { additionalProperties: false }) },
        },
      },
      async () => ({ categories: await catalogue.categories() }),
    );

    app.post(
      '/api/v1/archive-categories',
      {
        config: { permission: 'system:write', audit: { event_type: 'archive_category', action: 'create' } },
        schema: {
          tags: ['archives'],
          summary: 'Add a category (admins)',
          description: 'Names are unique regardless of case (409 `category_exists`).',
          body: CategoryBody,
          response: { 201: Category, ...errors(400, 409, 413, 415) },
        },
      },
      async (request, reply) => reply.status(201).send(await catalogue.createCategory(request.body.name)),
    );

    app.patch(
      '/api/v1/archive-categories/:category_id',
      {
        config: { permission: 'system:write', audit: { event_type: 'archive_category', action: 'change' } },
        schema: {
          tags: ['archives'],
          summary: 'Rename a category (admins)',
          params: CategoryParams,
          body: CategoryBody,
          response: { 200: Category, ...errors(400, 404, 409, 413, 415) },
        },
      },
      async (request) => catalogue.renameCategory(request.params.category_id, request.body.name),
    );

    app.delete(
      '/api/v1/archive-categories/:category_id',
      {
        config: { permission: 'system:write', audit: { event_type: 'archive_category', action: 'delete' } },
        schema: {
          tags: ['archives'],
          summary: 'Delete a category (admins)',
          description: 'Archives in it become uncategorised.',
          params: CategoryParams,
          response: { 204: Type.Null({ description: 'Deleted' }), ...errors(400, 404) },
        },
      },
      async (request, reply) => {
        await catalogue.deleteCategory(request.params.category_id);
        return reply.status(204).send(null);
      },
    );
  };
}
