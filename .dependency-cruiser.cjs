// Module boundaries (`npm run depcruise`, part of `npm run check`). CONTRIBUTING.md explains them.
// .cjs because package.json makes .js files ES modules.
const { join } = require('node:path');

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Import cycles, type-only ones included: a cycle means two modules are one, or one of them owns a type the other should.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'engine-independent',
      severity: 'error',
      comment:
        'The imaging engine and the media readers work on a file or device alone; what runs them (jobs, HTTP, pages, the database) comes to them, not the reverse.',
      from: { path: '^src/(imaging|media)/' },
      to: { path: '^src/(http|web|db|jobs)/' },
    },
    {
      name: 'db-below-interfaces',
      severity: 'error',
      comment: 'Storage knows nothing of the API or the pages that show what it stores.',
      from: { path: '^src/db/' },
      to: { path: '^src/(http|web)/' },
    },
    {
      name: 'http-not-web',
      severity: 'error',
      comment: 'The JSON API stands without the pages; what needs both (the server, the generated API docs) sits above them.',
      from: { path: '^src/http/' },
      to: { path: '^src/web/' },
    },
    {
      name: 'no-domain-types-from-db',
      severity: 'error',
      comment:
        'Domain types (statuses, records, job options, roles, JSON values) belong to jobs/, archive/, auth/ and the shared modules; db/ stores them and imports them, never the reverse. Outside db/ only its storage interface is imported: the repositories and the queue (interfaces, factories, query filters) and database.ts (opening it, transactions), open.ts (the configured one), postgres.ts and copy-to-postgres.ts (the cluster database, `disk2iso migrate`). Table shapes, column helpers and migrations stay inside, whether a type or a value is imported.',
      from: { path: '^src/', pathNot: '^src/db/' },
      to: { path: '^src/db/', pathNot: '^src/db/(database|open|postgres|copy-to-postgres|sqlite-queue|[a-z-]+-repository)\\.ts$' },
    },
    {
      name: 'src-not-to-tests',
      severity: 'error',
      comment: 'The product never depends on its tests, their tools or the benchmarks.',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'src-not-to-dev-dependencies',
      severity: 'error',
      comment: 'An installation has no devDependencies (npm ci --omit=dev); src/ may use only dependencies.',
      from: { path: '^src/' },
      to: { dependencyTypes: ['npm-dev'], dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'no-non-package-json',
      severity: 'error',
      comment: 'A package not in package.json works only by chance (hoisted by another one).',
      from: {},
      to: { dependencyTypes: ['npm-no-pkg', 'npm-unknown'] },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing fails at run time.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Data, not code: sysfs trees (with symlink loops, as in /sys) and the deliberate violations
    // test/tooling/boundaries.test.ts checks from inside their folder.
    exclude: { path: '^test/fixtures/' },
    tsConfig: { fileName: join(__dirname, 'tsconfig.json') },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.mjs', '.json'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
