#!/usr/bin/env node
// Writes docs/api.md from the OpenAPI document of the compiled routes, and the route/permission
// table of docs/security.md (run `npm run docs:api`).
// test/docs/api-docs.test.ts fails when the committed file differs from what this writes.
import { readFileSync, writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const { describeApi, renderApiMarkdown, renderPermissionTable, replaceSection } = await import(new URL('dist/src/docs/openapi.js', root).href);
const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const { document, routeTable } = await describeApi(version);
writeFileSync(new URL('docs/api.md', root), renderApiMarkdown(document, routeTable));
const security = new URL('docs/security.md', root);
writeFileSync(security, replaceSection(readFileSync(security, 'utf8'), 'routes', renderPermissionTable(routeTable)));
process.stdout.write('docs/api.md and the route table of docs/security.md written\n');
