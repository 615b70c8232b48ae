#!/usr/bin/env node
// Writes docs/api.md from the OpenAPI document of the compiled routes (run `npm run docs:api`).
// test/http/api-docs.test.ts fails when the committed file differs from what this writes.
import { readFileSync, writeFileSync } from 'node:fs';

const root = new URL('..', import.meta.url);
const { describeApi, renderApiMarkdown } = await import(new URL('dist/src/http/openapi.js', root).href);
const { version } = JSON.parse(readFileSync(new URL('package.json', root), 'utf8'));
const { document, routeTable } = await describeApi(version);
writeFileSync(new URL('docs/api.md', root), renderApiMarkdown(document, routeTable));
process.stdout.write('docs/api.md written\n');
