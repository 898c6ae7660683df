// This replica's memory of each video's latest code version: saves the edit loop's repeated reads a round trip.
// Correctness never depends on it: entries live ttlMs at most and this replica's own writes replace them.
import { LRUCache } from 'lru-cache'

export interface LatestCache<T extends { version: number }> {
  get: (videoKey: string) => T | undefined
  /** Remembers a version as the latest unless a newer one is already remembered. */
  offer: (videoKey: string, entry: T) => void
  forget: (videoKey: string) => void
}

/** At most `max` videos and `maxBytes` by sizeOf (content dominates), each for ttlMs; ttlMs 0 turns it off. */
export function createLatestCache<T extends { version: number }> ({ ttlMs, max = 1000, maxBytes = 32 * 1024 ** 2, sizeOf }: { ttlMs: number, max?: number, maxBytes?: number, sizeOf: (entry: T) => number }): LatestCache<T> {
  if (ttlMs <= 0) return { get: () => undefined, offer: () => {}, forget: () => {} }
  const entries = new LRUCache<string, T>({ max, maxSize: maxBytes, sizeCalculation: (entry) => Math.max(1, sizeOf(entry)), ttl: ttlMs })
  return {
    get: (videoKey) => entries.get(videoKey),
    offer (videoKey, entry) {
      const known = entries.get(videoKey, { allowStale: true })
      // Filling in the same version keeps its original expiry, so an entry never outlives ttlMs from its read.
      if (known === undefined || known.version < entry.version) entries.set(videoKey, entry)
      else if (known.version === entry.version) entries.set(videoKey, entry, { noUpdateTTL: true })
    },
    forget: (videoKey) => { entries.delete(videoKey) }
  }
}
