#!/usr/bin/env node
// Runs every compiled test file (Node 20's test runner expands no globs), or the ones named.
// --unit: only the unit tier (`npm run test:unit`): no root, FUSE, Chromium, processes of the CLI or
// the service, nor the whole service in-process; see INTEGRATION_MODULES.
// Then the PostgreSQL pass: every selected file that opens its databases through the engine switch
// (test/support/database.js, directly or through other test modules) runs again with its state in
// PostgreSQL. --sqlite-only leaves that pass out, --postgres-only runs only it.
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'dist', 'test');

/**
 * `--unit` leaves out every test file that uses one of these, directly or through other test
 * modules (src/ never imports test/, npm run depcruise checks it, so following test/'s own imports
 * is enough): loop devices need root, the FUSE file system root and fuse3, the browser Chromium,
 * and the service and auth stacks hash with real bcrypt (cost 12), minutes of CPU in all. Network
 * namespaces need root too, and so does nginx, whose workers run as www-data.
 */
const INTEGRATION_MODULES = [
  'test/tools/loop.js',
  'test/tools/faultfs.js',
  'test/support/netns.js',
  'test/support/nginx-upstream.js',
  'test/web/support/browser.js',
  'test/http/support.js',
  'test/web/support/web-server.js',
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

/**
 * Whether a compiled test module, or a test module it imports (directly or further down), is one
 * `picks(file, source)` names: one walk over the imports for each question, each answer kept.
 */
function reachesAny(picks) {
  const known = new Map();
  const reaches = (file, visiting = new Set()) => {
    const answer = known.get(file);
    if (answer !== undefined) return answer;
    if (visiting.has(file)) return false;
    visiting.add(file);
    const source = readFileSync(file, 'utf8');
    const result = picks(file, source) || relativeImports(source, file).some((imported) => imported.startsWith(testRoot) && reaches(imported, visiting));
    known.set(file, result);
    return result;
  };
  return reaches;
}

const isIntegration = reachesAny((file, source) => INTEGRATION_MODULES.includes(file) || STARTS_CLI.test(source));
const ENGINE_SWITCH = join(root, 'dist', 'test', 'support', 'database.js');
const usesEngineSwitch = reachesAny((file) => file === ENGINE_SWITCH);

const OPTIONS = ['--unit', '--sqlite-only', '--postgres-only'];
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const sqlitePass = !args.includes('--postgres-only');
const postgresPass = !args.includes('--sqlite-only') && !unitOnly;
const filters = args.filter((arg) => !OPTIONS.includes(arg));
const files = findTests(testRoot)
  .filter((file) => filters.length === 0 || filters.some((filter) => relative(root, file).includes(filter)))
  .filter((file) => !unitOnly || !isIntegration(file))
  .sort();
if (files.length === 0) {
  console.error(`no test files found under ${relative(root, testRoot)}${filters.length ? ` matching ${filters.join(', ')}` : ''}`);
  process.exit(1);
}
/**
 * A file that adds network interfaces (a network namespace's veth pair: test/support/netns.ts) runs
 * alone, after the others: Chromium in a file beside it takes the new interface for a network change
 * (ERR_NETWORK_CHANGED) and drops its connections, a live stream among them.
 */
const changesNetwork = (file) => /\bcreateNetworkHost\(|\buseCluster\(\{[^)]*\bhosts:/.test(readFileSync(file, 'utf8'));

// --test-force-exit: a handle a failed test leaves open (a listening server) must not keep the run
// going until CI's time limit; the failure is reported either way.
function runFiles(selected, env) {
  const alone = selected.filter(changesNetwork);
  const together = selected.filter((file) => !alone.includes(file));
  let status = 0;
  for (const [group, concurrency] of [
    [together, 2],
    [alone, 1],
  ]) {
    if (group.length === 0) continue;
    const result = spawnSync(process.execPath, ['--test', `--test-concurrency=${concurrency}`, '--test-force-exit', '--test-reporter=spec', ...group], {
      stdio: 'inherit',
      cwd: root,
      env,
    });
    if (status === 0) status = result.status ?? 1;
  }
  return status;
}

let status = 0;
if (sqlitePass) status = runFiles(files, process.env);
const postgresFiles = postgresPass ? files.filter((file) => usesEngineSwitch(file)) : [];
if (postgresFiles.length > 0) {
  console.log(`# PostgreSQL pass: ${postgresFiles.length} test files again with their state in PostgreSQL`);
  const { startPostgres } = await import(join(root, 'dist', 'test', 'support', 'postgres.js'));
  const { openPostgres } = await import(join(root, 'dist', 'src', 'db', 'postgres.js'));
  const server = await startPostgres();
  try {
    const template = 'disk2iso_template';
    const templateUrl = await server.createDatabase(template);
    const migrated = await openPostgres(templateUrl);
    await migrated.close();
    // The job dispatch's schema too (pg-boss installs it at a service's first start): each test database is cloned with it.
    const { default: PgBoss } = await import('pg-boss');
    const boss = new PgBoss({ connectionString: templateUrl, supervise: false, schedule: false });
    boss.on('error', () => undefined);
    await boss.start();
    await boss.stop({ graceful: false, close: true });
    const pass = { adminUrl: server.url('postgres'), template };
    const passStatus = runFiles(postgresFiles, { ...process.env, DISK2ISO_TEST_POSTGRES: JSON.stringify(pass) });
    if (status === 0) status = passStatus;
  } finally {
    await server.stop();
  }
}
process.exit(status);
