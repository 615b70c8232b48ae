import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { integrityOf } from '../../src/db/database.js';
import { MIGRATION_NAMES } from '../../src/db/migrations/index.js';
import { openDataDirDatabase } from '../support/database.js';
import { makeIso } from '../tools/iso.js';
import { TEST_ADMIN, TEST_PASSWORD, type TestServer, api, startTestServer } from './support.js';

/** Path traversal, SQL injection, markup and oddities: every one must be refused or stored as plain text. */
const PAYLOADS = [
  '../../../../etc/passwd',
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '/etc/shadow',
  '..\\..\\windows\\win.ini',
  "' OR '1'='1",
  '1; DROP TABLE jobs; --',
  '" OR ""="',
  "admin'--",
  '1 UNION SELECT name, password_hash FROM users',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a Log4Shell lookup, sent as plain text on purpose
  '${jndi:ldap://example.invalid/a}',
  'nul\u0000byte',
  '\u202Eevil',
  'x'.repeat(5000),
];

interface Operation {
  method: string;
  path: string;
  parameters: Array<{ name: string; in: 'path' | 'query' }>;
  bodyFields: string[];
}

/** Bodies that pass validation apart from the field under attack, so payloads reach the services. */
function baseBodies(device: string): Record<string, Record<string, unknown>> {
  return {
    'POST /api/v1/jobs': { device },
    'POST /api/v1/users': { name: 'hostile-target', role: 'viewer', password: TEST_PASSWORD },
    'POST /api/v1/api-keys': { name: 'hostile key', scopes: ['jobs:read'] },
    'POST /api/v1/auth/login': { username: 'nobody-here', password: 'x' },
    'POST /api/v1/auth/token': { username: 'nobody-here', password: 'x' },
    'POST /api/v1/auth/setup': { token: 'A'.repeat(43), username: 'nobody-here', password: TEST_PASSWORD },
    'PUT /api/v1/auth/password': { current_password: 'x', new_password: 'y' },
    'POST /api/v1/users/:name/password': { password: TEST_PASSWORD },
  };
}

describe('hostile input against every parameter of every route', () => {
  let work: string;
  let service: TestServer;
  let operations: Operation[];
  let device: string;
  let canary: string;
  let workFiles: string[];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'disk2iso-hostile-'));
    const iso = await makeIso({ dir: work, label: 'HOSTILE', dataMiB: 1, files: 1 });
    canary = join(work, 'canary.txt');
    await writeFile(canary, 'untouched');
    workFiles = (await readdir(work)).sort();
    service = await startTestServer({ devices: [iso.path] });
    device = (await api(service.url, 'GET', '/api/v1/devices')).body.devices[0].id;
    const document = (await api(service.url, 'GET', '/api/v1/openapi.json')).body as {
      paths: Record<
        string,
        Record<
          string,
          {
            parameters?: Array<{ name: string; in: string }>;
            requestBody?: { content: Record<string, { schema: { properties?: Record<string, { type?: string }> } }> };
          }
        >
      >;
    };
    operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({
        method: method.toUpperCase(),
        path: path.replace(/\{([^}]+)\}/g, ':$1'),
        parameters: (operation.parameters ?? []).filter(
          (parameter): parameter is { name: string; in: 'path' | 'query' } => parameter.in === 'path' || parameter.in === 'query',
        ),
        bodyFields: Object.entries(operation.requestBody?.content['application/json']?.schema.properties ?? {})
          .filter(([, schema]) => schema.type === 'string' || schema.type === undefined)
          .map(([name]) => name),
      })),
    );
  });
  after(async () => {
    await service?.close();
    await rm(work, { recursive: true, force: true });
  });

  it('answers every payload with a clear 4xx or a success, never a server error, and executes none', async () => {
    const bodies = baseBodies(device);
    const failures: string[] = [];
    let sent = 0;
    const send = async (method: string, url: string, body: unknown, label: string) => {
      if (url === '/api/v1/events' || url.startsWith('/api/v1/ws/') || url.startsWith('/api/v1/auth/logout')) return;
      const response = await api(service.url, method, url, body);
      sent += 1;
      if (response.status >= 500) failures.push(`${label}: ${response.status} ${JSON.stringify(response.body).slice(0, 200)}`);
      else if (response.status >= 400 && method !== 'HEAD' && typeof response.body?.error?.code !== 'string')
        failures.push(`${label}: ${response.status} without the error shape`);
    };
    for (const operation of operations) {
      const key = `${operation.method} ${operation.path}`;
      const pathWith = (name: string | null, payload: string) =>
        operation.path.replace(/:([a-z_]+)/g, (_match, param: string) =>
          param === name
            ? encodeURIComponent(payload)
            : param === 'device'
              ? device
              : param === 'name'
                ? TEST_ADMIN
                : `${param.split('_')[0]}_0123456789abcdef`,
        );
      const base = bodies[key];
      const needsBody = ['POST', 'PUT', 'PATCH'].includes(operation.method) && operation.bodyFields.length + Object.keys(base ?? {}).length > 0;
      for (const payload of PAYLOADS) {
        for (const parameter of operation.parameters) {
          const url = parameter.in === 'path' ? pathWith(parameter.name, payload) : `${pathWith(null, '')}?${parameter.name}=${encodeURIComponent(payload)}`;
          await send(operation.method, url, needsBody ? (base ?? {}) : undefined, `${key} ${parameter.in} ${parameter.name}=${payload.slice(0, 30)}`);
        }
        for (const field of operation.bodyFields) {
          await send(operation.method, pathWith(null, ''), { ...base, [field]: payload }, `${key} body.${field}=${payload.slice(0, 30)}`);
        }
      }
    }
    assert.deepEqual(failures, []);
    assert.ok(sent > 500, `${sent} hostile requests sent`);
  });

  it('left the database whole, stored text verbatim, and touched no file outside the data dir', async () => {
    const users = await api(service.url, 'GET', '/api/v1/users');
    assert.equal(users.status, 200);
    assert.ok(
      (users.body.users as Array<{ name: string }>).some((user) => user.name === TEST_ADMIN),
      'the users table still holds the admin',
    );
    const keys = (await api(service.url, 'GET', '/api/v1/api-keys')).body.api_keys as Array<{ name: string }>;
    const stored = new Set(keys.map((key) => key.name));
    for (const payload of ["' OR '1'='1", '1; DROP TABLE jobs; --', '<script>alert(1)</script>']) {
      assert.ok(stored.has(payload), `${payload} was stored as plain text`);
    }
    assert.equal((await api(service.url, 'GET', '/api/v1/jobs')).status, 200, 'the jobs table exists');
    const database = await openDataDirDatabase(service.dataDir);
    try {
      assert.deepEqual(await database.appliedMigrations(), MIGRATION_NAMES, 'every table of the schema is there');
      // The embedded file can also check its own pages; PostgreSQL's are the server's to keep.
      if (database.dialect === 'sqlite') assert.equal(integrityOf(database.location), 'ok');
    } finally {
      await database.close();
    }
    assert.equal(await readFile(canary, 'utf8'), 'untouched');
    assert.deepEqual((await readdir(work)).sort(), workFiles, 'nothing was written next to the disc image');
  });
});
