/**
 * Serialised answers by query, each with the data version it was read under: while the version is
 * unchanged the data are too, so a kept answer is what a fresh read would give. Kept as UTF-8 bytes
 * (a hit then skips encoding too), and only for queries asked before: kept answers outlive
 * young-generation collections, and keeping every one-off answer (someone paging through a long
 * list) grew the service by tens of MiB until a full collection (measured with 10,000 jobs).
 */
export interface ResponseCache {
  /** The kept answer for `key` at `version`, or `produce()`'s, which is kept from the second ask on. */
  get(key: string, version: string, produce: () => Promise<string>): Promise<Buffer>;
}

export function createResponseCache(capacity: number): ResponseCache {
  const kept = new Map<string, { version: string; bytes: Buffer | null }>();
  return {
    async get(key, version, produce) {
      const entry = kept.get(key);
      // Deleted and set again on every use, so the Map's first key is the least recently used.
      kept.delete(key);
      const bytes = entry?.version === version && entry.bytes !== null ? entry.bytes : Buffer.from(await produce(), 'utf8');
      kept.set(key, { version, bytes: entry === undefined ? null : bytes });
      for (const oldest of kept.keys()) {
        if (kept.size <= capacity) break;
        kept.delete(oldest);
      }
      return bytes;
    },
  };
}
