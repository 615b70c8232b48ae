import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRateLimiter } from '../../src/http/rate-limit.js';

describe('rate limiter: nginx limit_req rate=10r/s burst=20 nodelay', () => {
  function makeLimiter(perSecond = 10, burst = 20) {
    let nowMs = 1_000_000;
    const limiter = createRateLimiter(
      () => ({ perSecond, burst }),
      () => nowMs,
    );
    return { limiter, advance: (ms: number) => (nowMs += ms) };
  }

  it('allows a burst of 20 at once, refuses the 21st, and says how long to wait', () => {
    const { limiter } = makeLimiter();
    for (let request = 0; request < 20; request += 1) assert.equal(limiter.take('10.0.0.1'), 0, `request ${request + 1}`);
    assert.ok(Math.abs(limiter.take('10.0.0.1') - 0.1) < 1e-9, 'one token comes back after 0.1 s');
  });

  it('refills 10 tokens per second, never beyond the burst', () => {
    const { limiter, advance } = makeLimiter();
    for (let request = 0; request < 20; request += 1) limiter.take('10.0.0.1');
    advance(500);
    for (let request = 0; request < 5; request += 1) assert.equal(limiter.take('10.0.0.1'), 0);
    assert.ok(limiter.take('10.0.0.1') > 0, 'half a second gave five requests, not six');
    advance(60_000);
    for (let request = 0; request < 20; request += 1) assert.equal(limiter.take('10.0.0.1'), 0);
    assert.ok(limiter.take('10.0.0.1') > 0, 'a long pause refills to the burst, no further');
  });

  it('keeps clients apart', () => {
    const { limiter } = makeLimiter(1, 1);
    assert.equal(limiter.take('10.0.0.1'), 0);
    assert.ok(limiter.take('10.0.0.1') > 0);
    assert.equal(limiter.take('10.0.0.2'), 0);
  });

  it('counts refused requests as no token, so hammering does not push the wait further out', () => {
    const { limiter, advance } = makeLimiter(1, 1);
    limiter.take('a');
    for (let request = 0; request < 100; request += 1) limiter.take('a');
    advance(1000);
    assert.equal(limiter.take('a'), 0);
  });

  it('forgets clients whose bucket is full again, so memory follows the active clients only', () => {
    const { limiter, advance } = makeLimiter(10, 20);
    for (let client = 0; client < 1000; client += 1) limiter.take(`10.0.${client >> 8}.${client & 255}`);
    assert.equal(limiter.size(), 1000);
    advance(2001);
    limiter.take('10.9.9.9');
    assert.equal(limiter.size(), 1, 'every refilled bucket was dropped');
  });

  it('reads the limit on every request, so a settings change applies at once', () => {
    let burst = 1;
    const limiter = createRateLimiter(
      () => ({ perSecond: 1, burst }),
      () => 0,
    );
    assert.equal(limiter.take('a'), 0);
    assert.ok(limiter.take('a') > 0);
    burst = 5;
    assert.ok(limiter.take('b') === 0 && limiter.take('b') === 0, 'a new client gets the new burst');
  });
});
