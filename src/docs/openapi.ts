import { loadConfig } from '../config/load.js';
import { type App, buildApp } from '../http/app.js';
import type { DeclaredRoute } from '../http/permissions.js';
import { type ApiServices, apiRoutes } from '../http/routes/index.js';
import { silentLogger } from '../log.js';
import { registerWebRoutes } from '../web/routes.js';
import type { WebDeps } from '../web/types.js';

/**
 * The OpenAPI document without a running service: the routes are registered over services that
 * refuse every call (registration never calls them), so docs/api.md can be generated anywhere.
 */
export async function describeApi(version: string): Promise<{ document: OpenApiDocument; routeTable: DeclaredRoute[] }> {
  const services = refusingServices<ApiServices>();
  const webDeps = { ...refusingServices<WebDeps>(), config: loadConfig({ env: {} }) };
  const { app, routeTable } = await buildApp({
    version,
    logger: silentLogger(),
    routes: [...apiRoutes(services), (scope: App) => registerWebRoutes(scope, webDeps)],
  });
  try {
    return { document: app.swagger() as unknown as OpenApiDocument, routeTable };
  } finally {
    await app.close();
  }
}

/** Stand-ins for services: registering routes never calls them, and any call fails loudly. */
function refusingServices<T extends object>(): T {
  const refuse = (): never => {
    throw new Error('no services exist while the routes are only being described');
  };
  return new Proxy({} as T, { get: () => new Proxy(refuse, { get: () => refuse }) });
}

/** docs/security.md's table: every route and page with what it needs, API first, then pages. */
export function renderPermissionTable(routeTable: readonly DeclaredRoute[]): string {
  const rows = routeTable
    .filter((route) => route.method !== 'HEAD' && !route.url.startsWith('/api/docs') && !route.url.startsWith('/static/'))
    .map((route) => ({ ...route, page: !route.url.startsWith('/api/') }))
    .sort(
      (a, b) =>
        Number(a.page) - Number(b.page) ||
        a.url.localeCompare(b.url) ||
        METHOD_ORDER.indexOf(a.method.toLowerCase()) - METHOD_ORDER.indexOf(b.method.toLowerCase()),
    );
  const lines = [
    '| method | route or page | needs |',
    '| --- | --- | --- |',
    ...rows.map((route) => `| ${route.method} | \`${route.url}\` | ${route.permission} |`),
  ];
  return `${lines.join('\n')}\n`;
}

/** Replaces what lies between `<!-- NAME:start -->` and `<!-- NAME:end -->` in a document. */
export function replaceSection(document: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->\n`;
  const end = `<!-- ${name}:end -->`;
  const from = document.indexOf(start);
  const to = document.indexOf(end);
  if (from === -1 || to < from) throw new Error(`the document has no ${name} section`);
  return `${document.slice(0, from + start.length)}${content}${document.slice(to)}`;
}

/** The parts of an OpenAPI 3.1 document the Markdown rendering reads. */
export interface OpenApiDocument {
  openapi: string;
  info: { title: string; version: string; description?: string };
  tags?: Array<{ name: string; description?: string }>;
  paths: Record<string, Record<string, Operation>>;
}

interface Operation {
  summary?: string;
  description?: string;
  tags?: string[];
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string; schema?: SchemaNode }>;
  requestBody?: { content?: Record<string, { schema?: SchemaNode }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: SchemaNode }> }>;
}

interface SchemaNode {
  type?: string | string[];
  enum?: unknown[];
  const?: unknown;
  anyOf?: SchemaNode[];
  items?: SchemaNode;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  patternProperties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  format?: string;
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
}

const METHOD_ORDER = ['get', 'head', 'post', 'put', 'patch', 'delete'];

function typeOf(node: SchemaNode): string {
  if (node.const !== undefined) return JSON.stringify(node.const);
  if (node.enum) return node.enum.map((value) => JSON.stringify(value)).join(' | ');
  if (node.anyOf) return node.anyOf.map(typeOf).join(' | ');
  if (node.type === 'array') {
    const item = node.items ? typeOf(node.items) : 'any';
    return item.includes(' | ') ? `(${item})[]` : `${item}[]`;
  }
  if (node.type === 'object' && !node.properties && node.patternProperties) return 'map';
  if (node.type === 'object' && !node.properties && node.additionalProperties !== false) return 'map';
  const type = Array.isArray(node.type) ? node.type.join(' | ') : (node.type ?? 'any');
  return node.format ? `${type} (${node.format})` : type;
}

function limitsOf(node: SchemaNode): string {
  const parts: string[] = [];
  if (node.minimum !== undefined || node.maximum !== undefined) parts.push(`${node.minimum ?? ''}..${node.maximum ?? ''}`);
  if (node.minLength !== undefined || node.maxLength !== undefined) parts.push(`length ${node.minLength ?? 0}..${node.maxLength ?? ''}`);
  if (node.minItems !== undefined || node.maxItems !== undefined) parts.push(`items ${node.minItems ?? 0}..${node.maxItems ?? ''}`);
  if (node.pattern !== undefined) parts.push(`pattern \`${node.pattern}\``);
  if (node.default !== undefined) parts.push(`default ${JSON.stringify(node.default)}`);
  return parts.join('; ');
}

function cell(text: string | undefined): string {
  return (text ?? '').replace(/\r?\n/g, ' ').replace(/\|/g, '\\|');
}

/** The object inside a nullable union, so its fields get listed. */
function objectPart(node: SchemaNode): SchemaNode | undefined {
  if (node.properties) return node;
  if (node.type === 'array' && node.items) return objectPart(node.items);
  return node.anyOf?.map(objectPart).find((part) => part !== undefined);
}

function fieldRows(node: SchemaNode, prefix: string, rows: string[]): void {
  const object = objectPart(node);
  if (!object?.properties) return;
  const required = new Set(object.required ?? []);
  for (const [name, child] of Object.entries(object.properties)) {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    const isArrayOfObjects = child.type === 'array' && child.items !== undefined && objectPart(child.items) !== undefined;
    const shown = isArrayOfObjects ? `${path}[]` : path;
    const details = [cell(child.description), cell(limitsOf(child))].filter((part) => part !== '').join('; ');
    rows.push(`| \`${shown}\` | ${cell(typeOf(child))} | ${required.has(name) ? 'yes' : 'no'} | ${details} |`);
    fieldRows(child, shown, rows);
  }
}

function schemaTable(node: SchemaNode): string[] {
  const rows: string[] = [];
  fieldRows(node, '', rows);
  if (rows.length === 0) return [`${cell(typeOf(node))}${node.description ? ` — ${cell(node.description)}` : ''}`, ''];
  return ['| field | type | required | notes |', '|---|---|---|---|', ...rows, ''];
}

function operationSection(path: string, method: string, operation: Operation, permission: string | undefined): string[] {
  const lines = [`### ${method.toUpperCase()} ${path}`, ''];
  if (operation.summary) lines.push(`**${operation.summary}**`, '');
  if (permission) lines.push(`Permission: \`${permission}\``, '');
  if (operation.description) lines.push(operation.description, '');
  const parameters = operation.parameters ?? [];
  if (parameters.length > 0) {
    lines.push('| parameter | in | type | required | notes |', '|---|---|---|---|---|');
    for (const parameter of parameters) {
      const schema = parameter.schema ?? {};
      const notes = [cell(parameter.description ?? schema.description), cell(limitsOf(schema))].filter((part) => part !== '').join('; ');
      lines.push(`| \`${parameter.name}\` | ${parameter.in} | ${cell(typeOf(schema))} | ${parameter.required ? 'yes' : 'no'} | ${notes} |`);
    }
    lines.push('');
  }
  const body = operation.requestBody?.content?.['application/json']?.schema;
  if (body) lines.push('Request body (`application/json`):', '', ...schemaTable(body));
  const errorStatuses: string[] = [];
  for (const [status, response] of Object.entries(operation.responses ?? {})) {
    const schema = response.content?.['application/json']?.schema;
    if (Number(status) >= 400) {
      errorStatuses.push(status);
      continue;
    }
    lines.push(
      `Response ${status}${response.description && response.description !== 'Default Response' ? ` — ${response.description}` : ''}${schema ? ':' : ''}`,
      '',
    );
    if (schema) lines.push(...schemaTable(schema));
  }
  if (errorStatuses.length > 0) lines.push(`Errors: ${errorStatuses.join(', ')} (the error shape above).`, '');
  return lines;
}

/** docs/api.md: every route of the OpenAPI document, grouped by tag, with its permission, parameters and fields. */
export function renderApiMarkdown(document: OpenApiDocument, routeTable: readonly DeclaredRoute[]): string {
  const permissionOf = (method: string, path: string): string | undefined => {
    const fastifyPath = path.replace(/\{([^}]+)\}/g, ':$1');
    return routeTable.find((route) => route.method === method.toUpperCase() && route.url === fastifyPath)?.permission;
  };
  const lines = [
    `# ${document.info.title} ${document.info.version}`,
    '',
    '<!-- Generated from the OpenAPI document by `npm run docs:api`; edit the route schemas in src/http/routes, not this file. -->',
    '',
    `${document.info.description ?? ''}`,
    '',
    `The same document is served at \`/api/v1/openapi.json\` (OpenAPI ${document.openapi}); \`/api/docs\` shows it interactively.`,
    '',
    '## Conventions',
    '',
    '- JSON in and out (`Content-Type: application/json`; anything else is 415). Bodies larger than 64 KiB are refused with 413.',
    '- Unknown fields in a body or query string are an error (400), never silently ignored. Query values are converted to the declared type; body values must already have it.',
    '- Timestamps are ISO 8601 UTC. Ids carry their kind: `job_…`, `archive_…`; a malformed id is 400.',
    '- Every error is `{"error": {"code": "...", "message": "...", "details": ...}}`, with a stable `code`; server errors never include internals.',
    '- Every route declares the permission it needs (shown below); `public` routes answer without credentials.',
    '',
  ];
  const tags = document.tags ?? [];
  for (const tag of tags) {
    lines.push(`## ${tag.name}`, '');
    if (tag.description) lines.push(tag.description, '');
    for (const [path, operations] of Object.entries(document.paths)) {
      const methods = Object.keys(operations).sort((a, b) => METHOD_ORDER.indexOf(a) - METHOD_ORDER.indexOf(b));
      for (const method of methods) {
        const operation = operations[method];
        if (!operation || !(operation.tags ?? []).includes(tag.name)) continue;
        lines.push(...operationSection(path, method, operation, permissionOf(method, path)));
      }
    }
  }
  return `${lines
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}
