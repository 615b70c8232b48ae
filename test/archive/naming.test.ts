import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { allocateImagePath, imageNameFromLabel, resolveOutputFile, validateImageName } from '../../src/archive/naming.js';
import { ValidationError } from '../../src/errors.js';

describe('image names', () => {
  it('accepts ordinary names and drops a trailing .iso', () => {
    assert.equal(validateImageName('movie_collection_disc1'), 'movie_collection_disc1');
    assert.equal(validateImageName('Backup 2024 (disc 2).iso'), 'Backup 2024 (disc 2)');
    assert.equal(validateImageName('Ärzte-Live'), 'Ärzte-Live');
  });

  for (const [bad, why] of [
    ['../etc/passwd', /path separator|\.\./],
    ['a/b', /path separator/],
    ['a\\b', /path separator/],
    ['..', /\.\./],
    ['x..y', /\.\./],
    ['evil\u0000name', /control characters/],
    ['line\nbreak', /control characters/],
    ['\u001b[31mred', /control characters/],
    ['', /empty/],
    ['.hidden', /must not start/],
    ['-rf', /must not start/],
    ['x'.repeat(201), /longer than/],
  ] as const) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => validateImageName(bad),
        (error: unknown) => error instanceof ValidationError && why.test(error.message),
      );
    });
  }

  it('repairs volume labels instead of refusing them', () => {
    assert.equal(imageNameFromLabel('MOVIE/DISC:1'), 'MOVIE_DISC_1');
    assert.equal(imageNameFromLabel('../../x'), 'x');
    assert.equal(imageNameFromLabel('  My Disc  '), 'My_Disc');
    assert.equal(imageNameFromLabel('\u0007'), 'disc');
    assert.equal(imageNameFromLabel(null, 'sr0'), 'sr0');
    assert.doesNotThrow(() => validateImageName(imageNameFromLabel('a\u0000b/..c')));
  });
});

describe('output paths', () => {
  let outputDir: string;
  let outside: string;
  before(async () => {
    outputDir = await mkdtemp(join(tmpdir(), 'disk2iso-out-'));
    outside = await mkdtemp(join(tmpdir(), 'disk2iso-outside-'));
  });
  after(async () => {
    await rm(outputDir, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
  });

  it('gives colliding names a suffix, counting leftovers of unfinished runs', async () => {
    assert.equal(await allocateImagePath(outputDir, 'DISC'), join(outputDir, 'DISC.iso'));
    await writeFile(join(outputDir, 'DISC.iso'), '');
    assert.equal(await allocateImagePath(outputDir, 'DISC'), join(outputDir, 'DISC_2.iso'));
    await writeFile(join(outputDir, 'DISC_2.iso.part'), '');
    assert.equal(await allocateImagePath(outputDir, 'DISC'), join(outputDir, 'DISC_3.iso'));
  });

  it('keeps a given output inside the output directory', async () => {
    assert.equal(await resolveOutputFile(outputDir, 'a.iso'), join(outputDir, 'a.iso'));
    assert.equal(await resolveOutputFile(outputDir, join(outputDir, 'b')), join(outputDir, 'b.iso'));
    const before = await readdir(outputDir);
    for (const bad of ['../a.iso', join(outside, 'a.iso'), '/etc/a.iso', `${outputDir}/../x.iso`, 'bad\u0001.iso']) {
      await assert.rejects(resolveOutputFile(outputDir, bad), ValidationError, bad);
    }
    await mkdir(join(outputDir, 'sub'));
    assert.equal(await resolveOutputFile(outputDir, 'sub/c.iso'), join(outputDir, 'sub', 'c.iso'));
    await symlink(outside, join(outputDir, 'escape'));
    await assert.rejects(resolveOutputFile(outputDir, 'escape/d.iso'), /leads outside/);
    assert.deepEqual((await readdir(outputDir)).sort(), [...before, 'escape', 'sub'].sort(), 'nothing written');
  });
});
