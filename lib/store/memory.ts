import { LRUCache } from 'lru-cache'
import { checkOptionNames, GroupcacheError } from '../errors.js'
import { EntryKeys, entryKey } from '../core/keys.js'
import type { StoreBumpOptions, GraceResult, LookupResult, Store } from './store.js'

export interface MemoryStoreOptions {
  /**
   * Upper bound on the bytes held by entries (body, headers and key, plus
   * 800 bytes per entry for what the process spends on each beyond them).
   * Least recently used entries go first.
   * @default 67108864 (64 MiB)
   */
  maxBytes?: number
  /**
   * Upper bound on the number of entries.
   * @default 100000
   */
  maxEntries?: number
  /**
   * Upper bound on the number of group versions kept. An evicted version is
   * reseeded above every version this store has handed out, so eviction can
   * cause misses but never a hit on an older generation.
   * @default 100000
   */
  maxVersions?: number
}

/**
 * Bytes an entry costs the process beyond its key and value: the Buffer's
 * objects on the V8 heap, its backing store and malloc's bookkeeping, the LRU
 * node and timestamps. Measured with bench/entry-cost.ts (Node 20: about 780–910
 * bytes of RSS per entry beyond the value), so `maxBytes` bounds what the
 * entries really hold, not only their payload.
 */
const ENTRY_OVERHEAD = 800

function positiveInt(options: MemoryStoreOptions, name: keyof MemoryStoreOptions, fallback: number): number {
  const value = options[name] ?? fallback
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new GroupcacheError('GC_INVALID_OPTION', `MemoryStore option ${name} must be a positive integer, got ${String(value)}`)
  }
  return value
}

interface Grace {
  /** The version before the soft bump. */
  readonly from: string
  /** The version the soft bump set. */
  readonly to: string
  readonly bumpedAt: number
  readonly until: number
}

/** The in-process store: bounded by bytes and entries, LRU, every entry with a TTL. */
export class MemoryStore implements Store {
  readonly local = true
  readonly #entries: LRUCache<string, Buffer>
  /** Versions as decimal strings: converted once per bump, not once per hit. */
  readonly #versions: LRUCache<string, string>
  /** Every version handed out so far is below this: reseeds start here or later. */
  #floor = 0
  readonly #entryKeys = new EntryKeys()
  /** Soft bumps within their grace, by version key (bounded like the versions). */
  readonly #graces: LRUCache<string, Grace>

  constructor(options: MemoryStoreOptions = {}) {
    if (options === null || typeof options !== 'object') throw new GroupcacheError('GC_INVALID_OPTION', `MemoryStore: options must be an object, got ${String(options)}`)
    checkOptionNames('MemoryStore', options, ['maxBytes', 'maxEntries', 'maxVersions'])
    this.#entries = new LRUCache<string, Buffer>({
      max: positiveInt(options, 'maxEntries', 100_000),
      maxSize: positiveInt(options, 'maxBytes', 64 * 1024 * 1024),
      sizeCalculation: (value, key) => value.byteLength + key.length + ENTRY_OVERHEAD
    })
    this.#graces = new LRUCache<string, Grace>({ max: positiveInt(options, 'maxVersions', 100_000) })
    this.#versions = new LRUCache<string, string>({
      max: positiveInt(options, 'maxVersions', 100_000),
      // A version leaving the table (evicted, or replaced by a bump) raises the
      // floor, so a reseed of that key can never land on a value it had.
      dispose: (value) => {
        const n = Number(value)
        if (n >= this.#floor) this.#floor = n + 1
      }
    })
  }

  /**
   * A fresh version: microseconds since the epoch (about 2^50.7 today, exact in
   * a double), and never below a version this store already handed out.
   */
  #seed(): string {
    const seed = Math.max(Date.now() * 1000, this.#floor)
    this.#floor = seed + 1
    return String(seed)
  }

  #version(key: string): string {
    let version = this.#versions.get(key)
    if (version === undefined) {
      version = this.#seed()
      this.#versions.set(key, version)
    }
    return version
  }

  lookup(versionKeys: readonly string[], requestKey: string, entryPrefix: string): LookupResult {
    const versions = versionKeys.map((k) => this.#version(k))
    const key = this.#entryKeys.derive(entryPrefix, versionKeys, versions, requestKey)
    return { versions, entryKey: key, entry: this.#entries.get(key) }
  }

  /** Stores an entry, then drops the entry of the generation it replaced (its bytes are freed now, not at eviction). */
  async set(key: string, value: Buffer, ttlMs: number): Promise<void> {
    this.#entries.set(key, value, { ttl: ttlMs })
    const replaced = this.#entryKeys.takeReplaced(key)
    if (replaced !== undefined) this.#entries.delete(replaced)
  }

  async delete(key: string): Promise<void> {
    this.#entries.delete(key)
  }

  async bump(versionKeys: readonly string[], options: StoreBumpOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? 0
    const now = Date.now()
    for (const key of versionKeys) {
      const current = this.#versions.get(key)
      const next = current === undefined ? this.#seed() : String(Number(current) + 1)
      this.#versions.set(key, next)
      if (graceMs > 0 && current !== undefined) this.#graces.set(key, { from: current, to: next, bumpedAt: now, until: now + graceMs })
      else this.#graces.delete(key)
    }
  }

  lookupGrace(versionKeys: readonly string[], versions: readonly string[], requestKey: string, entryPrefix: string): GraceResult | undefined {
    if (this.#graces.size === 0) return undefined
    const now = Date.now()
    let previous: string[] | undefined
    let bumpedAt = 0
    let until = Infinity
    for (let i = 0; i < versionKeys.length; i++) {
      const grace = this.#graces.get(versionKeys[i] as string)
      // A record applies only to the version its soft bump set: any later bump ends it.
      if (grace === undefined || grace.to !== versions[i] || grace.until <= now) continue
      previous ??= [...versions]
      previous[i] = grace.from
      bumpedAt = Math.max(bumpedAt, grace.bumpedAt)
      until = Math.min(until, grace.until)
    }
    if (previous === undefined) return undefined
    const key = entryKey(entryPrefix, versionKeys, previous, requestKey)
    return { entryKey: key, entry: this.#entries.get(key), bumpedAt, until }
  }

  async close(): Promise<void> {
    this.#entries.clear()
  }

  /** Entries currently held and the bytes they count for (for stats and tests). */
  get size(): { entries: number; bytes: number; versions: number } {
    return { entries: this.#entries.size, bytes: this.#entries.calculatedSize, versions: this.#versions.size }
  }
}
