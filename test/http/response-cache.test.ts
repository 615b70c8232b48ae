import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createResponseCache } from '../../src/http/response-cache.js';

describe('response cache', () => {
  function counted() {
    let calls = 0;
    return { produce: async () => `{"n":${++calls}}`, calls: () => calls };
  }

  it('keeps an answer from the second ask on, and serves it while the version stays', async () => {
    const cache = createResponseCache(4);
    const source = counted();
    assert.equal(String(await cache.get('a', '1', source.produce)), '{"n":1}');
    assert.equal(String(await cache.get('a', '1', source.produce)), '{"n":2}', 'a one-off query is not kept');
    assert.equal(String(await cache.get('a', '1', source.produce)), '{"n":2}', 'asked again: served as kept');
    assert.equal(source.calls(), 2);
  });

  it('reads again once the version moves', async () => {
    const cache = createResponseCache(4);
    const source = counted();
    await cache.get('a', '1', source.produce);
    await cache.get('a', '1', source.produce);
    assert.equal(String(await cache.get('a', '2', source.produce)), '{"n":3}');
    assert.equal(String(await cache.get('a', '2', source.produce)), '{"n":3}');
  });

  it('forgets the least recently used query beyond its capacity', async () => {
    const cache = createResponseCache(2);
    const source = counted();
    for (const key of ['a', 'a', 'b', 'b']) await cache.get(key, '1', source.produce);
    await cache.get('a', '1', source.produce);
    await cache.get('c', '1', source.produce);
    const before = source.calls();
    await cache.get('a', '1', source.produce);
    assert.equal(source.calls(), before, 'a was used most recently and stays');
    await cache.get('b', '1', source.produce);
    assert.equal(source.calls(), before + 1, 'b was the oldest and went');
  });
});
