import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import type { Drive } from '../../src/drives/types.js';
import { shouldEject } from '../../src/jobs/intake.js';

const tray: Drive = {
  id: 'sr0',
  path: '/dev/sr0',
  kind: 'optical',
  vendor: null,
  model: null,
  revision: null,
  capabilities: ['cd'],
  ejectable: true,
  description: 'a drive with a tray',
};

describe('when a disc is ejected', () => {
  const settings = (deleteSource: boolean) =>
    loadConfig({ dataDir: '/nonexistent-disk2iso', env: { DISK2ISO_STORAGE_DELETE_SOURCE_ON_SUCCESS: String(deleteSource) } });
  const complete = { badBytes: 0, verified: true };

  it("follows the job's own choice (a drive's automation profile) over the setting, in both directions", () => {
    assert.equal(shouldEject(settings(false), tray, { ...complete, requested: true }), true);
    assert.equal(shouldEject(settings(true), tray, { ...complete, requested: false }), false);
  });

  it('follows the setting when the job made no choice', () => {
    assert.equal(shouldEject(settings(true), tray, complete), true);
    assert.equal(shouldEject(settings(false), tray, complete), false);
  });

  it('never ejects an incomplete or unverified image, or a drive without a tray, whatever was asked', () => {
    const config = settings(true);
    assert.equal(shouldEject(config, tray, { badBytes: 2048, verified: true, requested: true }), false);
    assert.equal(shouldEject(config, tray, { badBytes: 0, verified: null, requested: true }), false);
    assert.equal(shouldEject(config, tray, { badBytes: 0, verified: false, requested: true }), false);
    assert.equal(shouldEject(config, { ...tray, ejectable: false }, { ...complete, requested: true }), false);
  });
});
