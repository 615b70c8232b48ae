#!/usr/bin/env node
// Runs every compiled test file (Node 20's test runner expands no globs), or the ones named.
// --unit: only the unit tier (`npm run test:unit`): no root, FUSE, Chromium, processes of the CLI or
// the service, nor the whole service in-process; see INTEGRATION_MODULES.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'dist', 'test');

/**
 * `--unit` leaves out every test file that uses one of these, directly or through other test
 * modules (src/ never imports test/, npm run depcruise checks it, so following test/'s own imports
 * is enough): loop devices need root, the FUSE file system root and fuse3, the browser Chromium,
 * and the service and auth stacks hash with real bcrypt (cost 12), minutes of CPU in all.
 */
const INTEGRATION_MODULES = [
  'test/tools/loop.js',
  'test/tools/faultfs.js',
  'test/web/support/browser.js',
  'test/http/support.js',
  'test/web/support/server.js',
  'test/auth/support.js',
].map((path) => join(root, 'dist', path));
/** So does a module that starts the CLI or the service as a process of its own. */
const STARTS_CLI = /['"]bin['"],\s*['"]disk2iso['"]/;

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.js') ? [path] : [];
  });
}

/** Relative imports of a compiled module: static, re-exports and dynamic ones with a literal path. */
function relativeImports(source, file) {
  return [...source.matchAll(/\b(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+\.js)['"]/g)].map((match) => resolve(dirname(file), match[1]));
}

const integration = new Map();
function isIntegration(file, visiting = new Set()) {
  const known = integration.get(file);
  if (known !== undefined) return known;
  if (visiting.has(file)) return false;
  visiting.add(file);
  const source = readFileSync(file, 'utf8');
  const result =
    INTEGRATION_MODULES.includes(file) ||
    STARTS_CLI.test(source) ||
    relativeImports(source, file).some((imported) => imported.startsWith(testRoot) && isIntegration(imported, visiting));
  integration.set(file, result);
  return result;
}

const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((arg) => arg !== '--unit');
const files = findTests(testRoot)
  .filter((file) => filters.length === 0 || filters.some((filter) => relative(root, file).includes(filter)))
  .filter((file) => !unitOnly || !isIntegration(file))
  .sort();
if (files.length === 0) {
  console.error(`no test files found under ${relative(root, testRoot)}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
// --test-force-exit: a handle a failed test leaves open (a listening server) must not keep the run
// going until CI's time limit; the failure is reported either way.
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-force-exit', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(result.status ?? 1);
