/**
 * Token buckets per client address, the way nginx's `limit_req rate=R burst=B nodelay` behaves: a
 * client may make B requests at once, then R per second; beyond that a request is refused (never
 * queued). Buckets that have refilled completely carry no information and are dropped, so memory
 * stays bounded by the number of clients active within the last B/R seconds, and a hard cap guards
 * against floods of spoofed addresses.
 */
export interface RateLimiter {
  /** Takes one token for `key`; returns 0 when allowed, otherwise the seconds until a token is free. */
  take(key: string): number;
  /** Clients currently tracked (for tests and metrics). */
  size(): number;
}

export interface RateLimit {
  /** Tokens added per second. */
  perSecond: number;
  /** Bucket capacity. */
  burst: number;
}

interface Bucket {
  tokens: number;
  updatedMs: number;
}

/** Beyond this many tracked clients, the least recently seen ones are forgotten. */
const MAX_TRACKED_CLIENTS = 100_000;

export function createRateLimiter(limit: () => RateLimit, nowMs: () => number = Date.now): RateLimiter {
  // A Map iterates in insertion order; re-inserting on every use keeps the oldest first.
  const buckets = new Map<string, Bucket>();

  function sweep(at: number, { perSecond, burst }: RateLimit): void {
    const fullAfterMs = (burst / perSecond) * 1000;
    for (const [key, bucket] of buckets) {
      if (at - bucket.updatedMs < fullAfterMs && buckets.size <= MAX_TRACKED_CLIENTS) break;
      buckets.delete(key);
    }
  }

  return {
    take(key) {
      const current = limit();
      const at = nowMs();
      const known = buckets.get(key);
      let tokens = current.burst;
      if (known !== undefined) {
        tokens = Math.min(current.burst, known.tokens + ((at - known.updatedMs) / 1000) * current.perSecond);
        buckets.delete(key);
      }
      sweep(at, current);
      if (tokens < 1) {
        buckets.set(key, { tokens, updatedMs: at });
        return (1 - tokens) / current.perSecond;
      }
      buckets.set(key, { tokens: tokens - 1, updatedMs: at });
      return 0;
    },
    size: () => buckets.size,
  };
}
