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
    for (const hostile of ['//evil.example', '/\\evil.example', 'https://evil.example', 'evil', '/a\nb', '/%0d%0a', undefined]) {
      const result = localPath(hostile, '/fallback');
      assert.ok(result === '/fallback' || (result.startsWith('/') && !result.startsWith('//') && !/[\r\n]/.test(result)), String(hostile));
    }
    assert.equal(localPath('//evil.example', '/fallback'), '/fallback');
    assert.equal(localPath('/\\evil.example', '/fallback'), '/fallback');
  });

  it('set query parameters and drop one-shot messages', () => {
    assert.equal(withParams('/archive?q=x&notice=saved&error=oops', { page: '2' }), '/archive?q=x&page=2');
    assert.equal(withParams('/?tab=finished', { tab: undefined, notice: 'job_pause' }), '/?notice=job_pause');
  });
});
