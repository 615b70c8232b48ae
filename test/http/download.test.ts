import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { contentDisposition, parseRange } from '../../src/http/download.js';

describe('Range header parsing', () => {
  const size = 1000;
  it('understands the three single-range forms', () => {
    assert.deepEqual(parseRange('bytes=0-99', size), { kind: 'partial', start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=900-', size), { kind: 'partial', start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-100', size), { kind: 'partial', start: 900, end: 999 });
    assert.deepEqual(parseRange('bytes=-5000', size), { kind: 'partial', start: 0, end: 999 }, 'a suffix longer than the file is the file');
    assert.deepEqual(parseRange('bytes=990-5000', size), { kind: 'partial', start: 990, end: 999 }, 'an end past the file is clamped');
    assert.deepEqual(parseRange(' bytes=5-5 ', size), { kind: 'partial', start: 5, end: 5 });
  });

  it('refuses ranges that lie wholly outside the file', () => {
    assert.deepEqual(parseRange('bytes=1000-', size), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=1000-1010', size), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=-0', size), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=0-', 0), { kind: 'unsatisfiable' });
    assert.deepEqual(parseRange('bytes=99999999999999999999-', size), { kind: 'unsatisfiable' });
  });

  it('ignores what it does not support, sending the whole file', () => {
    for (const header of [undefined, 'bytes=0-1,5-6', 'items=0-1', 'bytes=', 'bytes=-', 'bytes=50-10', 'bytes=a-b', 'bytes=1-2-3']) {
      assert.deepEqual(parseRange(header, size), { kind: 'full' }, String(header));
    }
  });
});

describe('Content-Disposition', () => {
  it('gives an ASCII fallback and the exact name in RFC 5987 form', () => {
    assert.equal(contentDisposition('disc.iso'), `attachment; filename="disc.iso"; filename*=UTF-8''disc.iso`);
    assert.equal(contentDisposition('Fotos Ä "2019".iso'), `attachment; filename="Fotos _ _2019_.iso"; filename*=UTF-8''Fotos%20%C3%84%20%222019%22.iso`);
    assert.equal(contentDisposition("it's (1).iso"), `attachment; filename="it's (1).iso"; filename*=UTF-8''it%27s%20%281%29.iso`);
    assert.equal(contentDisposition('a;b\\c.iso'), `attachment; filename="a_b_c.iso"; filename*=UTF-8''a%3Bb%5Cc.iso`);
    assert.ok(!/[\r\n]/.test(contentDisposition('evil\r\nSet-Cookie: x=1.iso')), 'no header injection');
  });
});
