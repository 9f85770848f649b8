import type { Logger } from '../core/generations.js'

/**
 * The one interface every store implements. It is shaped by Redis: a lookup
 * hands over everything needed to answer in one round trip (read or seed each
 * version, derive the entry key from them, read the entry).
 */
export interface LookupResult {
  /** The current version of each version key, in order (decimal strings). */
  readonly versions: readonly string[]
  /** The entry key derived from the versions (see lib/core/keys.ts). */
  readonly entryKey: string
  /** The entry's bytes, or undefined on a miss. */
  readonly entry: Buffer | undefined
}

/** How a bump moves its versions on (see {@link Store.bump}). */
export interface StoreBumpOptions {
  /**
   * A soft bump: for this many milliseconds the previous generation's entries
   * may still answer (stale) while one request recomputes. The store keeps a
   * grace record per version key, written with the increment (and dropped by a
   * later hard bump of the key), read only on the miss path (lookupGrace).
   */
  readonly graceMs?: number
}

/** An entry of the generation before a soft bump, still within its grace (see {@link Store.lookupGrace}). */
export interface GraceResult {
  /** The entry key of the previous generation. */
  readonly entryKey: string
  /** Its bytes, or undefined when the store no longer holds it. */
  readonly entry: Buffer | undefined
  /** Epoch milliseconds of the soft bump. */
  readonly bumpedAt: number
  /** Epoch milliseconds when the grace ends. */
  readonly until: number
}

/** What a cache tells its store when it starts on it (see {@link Store.attach}). */
export interface StoreContext {
  /** The cache's key prefix. */
  readonly prefix: string
  /** The cache's epoch key (`<prefix>:epoch`). */
  readonly epochKey: string
  readonly logger: Logger
  /** Counts and logs a store fault, rate-limited (`what`: `connection`, `identity`, …). */
  reportFault(err: unknown, what: string): void
}

export interface Store {
  /**
   * Reads the version of every key, seeding a missing one with a fresh value
   * that was never used for it before; derives the entry key from
   * `entryPrefix`, the keys, their versions and `requestKey`; reads the entry.
   * An in-process store may answer without a promise: the memory hit path then
   * runs synchronously, with no promise or microtask per request.
   */
  lookup(versionKeys: readonly string[], requestKey: string, entryPrefix: string): LookupResult | Promise<LookupResult>
  /** Stores an entry. `ttlMs` is always positive: nothing lives forever. */
  set(key: string, value: Buffer, ttlMs: number): Promise<void>
  /** Drops one entry. */
  delete(key: string): Promise<void>
  /**
   * Atomically moves every version key on (seeding it first when missing). A
   * hard bump (no `graceMs`) also drops any grace record of those keys, in the
   * same atomic step: after it, the old generation is never served.
   */
  bump(versionKeys: readonly string[], options?: StoreBumpOptions): Promise<void>
  /**
   * The entry the previous generation stored for this request, when a soft
   * bump of one of these keys is within its grace and the key's version is
   * still the one that bump set (`versions` are those the lookup returned).
   * Only keys with a grace record are taken back to their previous version.
   * Called on the miss path only, never on a hit. Stores without it have no
   * soft bumps (a soft bump is then a hard one).
   */
  lookupGrace?(versionKeys: readonly string[], versions: readonly string[], requestKey: string, entryPrefix: string): GraceResult | undefined | Promise<GraceResult | undefined>
  /**
   * Called by every cache (Generations) started on this store, before its
   * first call: which epoch the store must move when its server's identity
   * changes (versions never go back: README "Redis in production"), and where it reports its
   * own faults (rate-limited through the cache).
   */
  attach?(context: StoreContext): void
  /** Called once when a cache starts on this store: a place to warn about server settings. */
  checkServer?(logger: Logger): Promise<void>
  /** Releases what the store owns (never a caller-owned client). */
  close(): Promise<void>
  /**
   * True when calls never wait on I/O, so they need no timeout race.
   * @default false
   */
  readonly local?: boolean
  /**
   * Fleet-wide single flight (README "Fleet-wide single flight"), on a store that offers it
   * (`RedisStore` with its `singleFlight` option): a cold miss that leads in
   * its own process asks here before running the handler, so one process of
   * the fleet runs it. Undefined when the store has none (the memory store:
   * in-process coalescing already covers its only process).
   */
  readonly singleFlight?: SingleFlight | undefined
}

/** Held by the process that runs the handler for an entry (see {@link SingleFlight}). */
export interface Lease {
  /** Drops the lease and wakes the processes waiting on it. Never rejects. */
  release(): Promise<void>
}

/** How a wait for another process's lease ended: released (re-read the entry), or given up. */
export type WaitOutcome = 'released' | 'timeout'

export interface SingleFlight {
  /**
   * Takes the lease on an entry (the caller runs the handler, stores, then
   * releases it), or waits, bounded, for the process holding it. Rejects
   * only when the store cannot be asked. `cold`: the caller found no entry
   * at all (none stale either); an entry stored since then answers `'released'`.
   * `held` is called once, as soon as another process is known to hold the
   * lease (before the wait): the caller may answer its request another way
   * (a soft bump's grace entry) while this call keeps waiting.
   */
  lead(entryKey: string, cold?: boolean, held?: () => void): Promise<Lease | WaitOutcome>
  close(): Promise<void>
}
