import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createEjector } from '../../src/drives/eject.js';
import { UnavailableError } from '../../src/errors.js';

test('a missing eject program names the Debian package to install', async () => {
  const ejector = createEjector({ command: '/nonexistent/disk2iso-test/eject' });
  await assert.rejects(ejector('/dev/sr0'), (error: unknown) => {
    assert.ok(error instanceof UnavailableError);
    assert.equal(error.code, 'tool_missing');
    assert.match(error.message, /Debian package "eject"/);
    return true;
  });
});

test('eject gets the device path as its only argument, and its failure is reported', async () => {
  const workdir = await mkdtemp(join(tmpdir(), 'drives-eject-'));
  try {
    // A stand-in for util-linux eject that records its arguments, and fails for one device the way eject does.
    const log = join(workdir, 'args');
    const fake = join(workdir, 'eject');
    await writeFile(fake, `#!/bin/sh\nprintf '%s\\n' "$#" "$@" >> '${log}'\n[ "$1" = /dev/sr1 ] && { echo "eject: unable to eject" >&2; exit 1; }\nexit 0\n`);
    await chmod(fake, 0o755);
    const ejector = createEjector({ command: fake });
    await ejector('/dev/sr0');
    await assert.rejects(ejector('/dev/sr1'), (error: unknown) => {
      assert.ok(error instanceof UnavailableError);
      assert.equal(error.code, 'eject_failed');
      assert.match(error.message, /unable to eject/);
      return true;
    });
    assert.equal(await readFile(log, 'utf8'), '1\n/dev/sr0\n1\n/dev/sr1\n');
  } finally {
    await rm(workdir, { recursive: true, force: true });
  }
});
