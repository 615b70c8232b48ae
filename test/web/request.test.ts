import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formFields, localPath, withParams } from '../../src/web/request.js';

describe('form and link helpers', () => {
  it('read single and repeated form fields, ignoring everything that is not a string', () => {
    const form = formFields({ name: '  disc  ', ids: ['a', 'b'], odd: 5, nested: { x: 1 }, __proto__: 'x' });
    assert.equal(form.one('name'), 'disc');
    assert.deepEqual(form.all('ids'), ['a', 'b']);
    assert.equal(form.one('odd'), undefined);
    assert.equal(form.has('nested'), false);
    assert.equal(form.one('constructor'), undefined);
    assert.deepEqual(formFields(undefined).all('x'), []);
  });

  it('keep return paths on this site', () => {
    assert.equal(localPath('/archive?q=a&page=2', '/'), '/archive?q=a&page=2');
    assert.equal(localPath('/jobs/job_1/../job_2', '/'), '/jobs/job_2', 'normalised');
    // Encoded slashes stay encoded in a browser too: a path of this site, not another host.
    assert.equal(localPath('/%2F%2Fevil.example', '/'), '/%2F%2Fevil.example');
    assert.equal(localPath('/?next=//evil.example', '/'), '/?next=//evil.example', 'slashes in the query name no host');
  });

  it('fall back for every target a browser would take to another site, also once normalised', () => {
    const hostile = [
      '//evil.example/x',
      '/.//evil.example/phish',
      '/..//evil.example',
      '/a/..//evil.example',
      '/%2e//evil.example',
      '/%2e%2e//evil.example',
      '/.%2E//evil.example',
      '/\\evil.example',
      '/./\\evil.example',
      '\\\\evil.example',
      'https://evil.example/',
      'HTTPS://evil.example/',
      'javascript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      '/\t/evil.example',
      '/\n/evil.example',
      '/.\r//evil.example',
      '/ok\r\nSet-Cookie: x=1',
      '/\u0000/evil.example',
      'evil.example',
      '',
      undefined,
    ];
    for (const target of hostile) {
      assert.equal(localPath(target, '/fallback'), '/fallback', JSON.stringify(target));
      assert.equal(withParams(target ?? '', { notice: 'x' }), '/', JSON.stringify(target));
    }
  });

  it('give only paths a browser resolves to this site, whatever it is given', () => {
    const site = 'https://disk2iso.example';
    const inputs = ['/.//a', '/a/./b//c', '/%2e%2e/%2e%2e//x', '/a?b=//c#//d', '/\u00e4/../x', '/a/../../..//b', '/.;//x', '/;/..//x', '/ /x', '/..%2f/x'];
    for (const input of inputs) {
      for (const path of [localPath(input, '/'), withParams(input, { notice: 'x' })]) {
        assert.match(path, /^\/(?![/\\])/, `${JSON.stringify(input)} gave ${path}`);
        assert.equal(new URL(path, `${site}/login`).origin, site, `${JSON.stringify(input)} gave ${path}`);
      }
    }
  });

  it('set query parameters and drop one-shot messages', () => {
    assert.equal(withParams('/archive?q=x&notice=saved&error=oops', { page: '2' }), '/archive?q=x&page=2');
    assert.equal(withParams('/?tab=finished', { tab: undefined, notice: 'job_pause' }), '/?notice=job_pause');
  });
});
