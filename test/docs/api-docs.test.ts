import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { packageRoot } from '../../src/config/load.js';
import { describeApi, renderApiMarkdown, renderPermissionTable, replaceSection } from '../../src/docs/openapi.js';

describe('docs/api.md', () => {
  it('is what the current routes generate (run `npm run docs:api` after changing a route)', async () => {
    const root = packageRoot();
    const { version } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string };
    const { document, routeTable } = await describeApi(version);
    const expected = renderApiMarkdown(document, routeTable);
    const committed = await readFile(join(root, 'docs', 'api.md'), 'utf8');
    assert.ok(committed === expected, 'docs/api.md is stale: run `npm run docs:api` and commit the result');
    for (const path of Object.keys(document.paths)) assert.ok(committed.includes(` ${path}\n`), `${path} is documented`);
  });

  it('docs/security.md shows what every route and page needs, as the route table declares it', async () => {
    const root = packageRoot();
    const { routeTable } = await describeApi('0.0.0');
    const committed = await readFile(join(root, 'docs', 'security.md'), 'utf8');
    assert.ok(
      committed === replaceSection(committed, 'routes', renderPermissionTable(routeTable)),
      'docs/security.md is stale: run `npm run docs:api` and commit the result',
    );
    for (const page of ['/login', '/archive', '/config', '/users']) assert.ok(committed.includes(`| \`${page}\` |`), `${page} is in the table`);
  });
});
