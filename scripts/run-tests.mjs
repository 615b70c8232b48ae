#!/usr/bin/env node
// Runs every compiled test file (Node 20's test runner expands no globs), or the ones named.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'dist', 'test');

function findTests(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return findTests(path);
    return entry.name.endsWith('.test.js') ? [path] : [];
  });
}

const filters = process.argv.slice(2);
const files = findTests(testRoot)
  .filter((file) => filters.length === 0 || filters.some((filter) => relative(root, file).includes(filter)))
  .sort();
if (files.length === 0) {
  console.error(`no test files found under ${relative(root, testRoot)}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
// --test-force-exit: a handle a failed test leaves open (a listening server) must not keep the run
// going until CI's time limit; the failure is reported either way.
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-force-exit', '--test-reporter=spec', ...files], { stdio: 'inherit', cwd: root });
process.exit(result.status ?? 1);
