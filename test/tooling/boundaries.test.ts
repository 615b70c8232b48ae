import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { packageRoot } from '../../src/config/load.js';

/**
 * `npm run check` runs dependency-cruiser with .dependency-cruiser.cjs. Run from inside
 * test/fixtures/boundaries, the same configuration sees a miniature src/ and test/ whose every
 * file breaks one rule, so each rule is shown to fire, and to fail the run.
 */
function cruiseFixture(): { status: number | null; output: string } {
  const root = packageRoot();
  const result = spawnSync(
    process.execPath,
    [join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs'), '--config', join(root, '.dependency-cruiser.cjs'), 'src', 'test'],
    { cwd: join(root, 'test', 'fixtures', 'boundaries'), encoding: 'utf8' },
  );
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('module boundaries (dependency-cruiser)', () => {
  let status: number | null = null;
  let output = '';
  before(() => {
    ({ status, output } = cruiseFixture());
  });

  it('fails the run when a forbidden import exists', () => {
    assert.notEqual(status, 0, output);
    assert.ok(output.includes('(7 errors, 0 warnings)'), output);
  });

  for (const [rule, from, to] of [
    ['engine-independent', 'src/imaging/reader.ts', 'src/http/route.ts'],
    ['http-not-web', 'src/http/route.ts', 'src/web/page.ts'],
    ['db-below-interfaces', 'src/db/store.ts', 'src/http/route.ts'],
    ['src-not-to-tests', 'src/web/page.ts', 'test/label.ts'],
    ['no-domain-types-from-db', 'src/jobs/queue.ts', 'src/db/store.ts'],
    ['no-domain-types-from-db', 'src/archive/badge.ts', 'src/db/store.ts'],
  ]) {
    it(`reports ${rule} as an error, naming the import from ${from}`, () => {
      assert.ok(output.includes(`error ${rule}: ${from} → ${to}`), output);
    });
  }

  it('reports an import cycle, type-only imports included', () => {
    assert.match(output, /error no-circular: src\/web\/(form|page)\.ts →\s+src\/web\/(page|form)\.ts →\s+src\/web\/(form|page)\.ts/);
  });

  it('lets a service take the repository it uses from src/db', () => {
    assert.ok(!output.includes('src/jobs/service.ts'), output);
    assert.ok(!output.includes('src/db/job-repository.ts'), output);
  });
});
