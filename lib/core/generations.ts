import { GroupcacheError } from '../errors.js'
import { MemoryStore } from '../store/memory.js'
import type { LookupResult, Store } from '../store/store.js'
import { compileGroup, groupName, type CompiledGroup, type GroupDef, type GroupValues } from './groups.js'
import { Deadlines } from './deadlines.js'
import { entryPrefix, epochKey, versionKeyFromEncoded } from './keys.js'

/** Where groupcache reports store faults and misses. pino's (and so Fastify's) logger fits. */
export interface Logger {
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
  debug?(obj: unknown, msg?: string): void
}

export interface GenerationsOptions {
  /**
   * Where versions and entries live.
   * @default a new MemoryStore()
   */
  store?: Store
  /**
   * Prefix of every key written (no whitespace, `=` or `:` at its end).
   * @default 'gc'
   */
  prefix?: string
  /**
   * Default time to live of an entry, in seconds.
   * @default 60
   */
  ttl?: number
  /**
   * Longest wait for a store call, in milliseconds; a call that takes longer
   * counts as failed (the request is served by its handler). Not applied to
   * in-process stores, which never wait.
   * @default 250
   */
  timeout?: number
  /**
   * Receives store faults (warn/error) and misses (debug).
   * @default console (warn and error only)
   */
  logger?: Logger
}

export interface CacheStats {
  hits: number
  misses: number
  stores: number
  bypasses: number
  collapsed: number
  bumps: number
  errors: number
  /** Version keys whose bump has not reached the store yet. */
  pendingBumps: number
}

/**
 * A bump that reached the store (now, or later by a retry). Listeners (CDN
 * purgers, diagnostics) are called after it landed; a listener's error is
 * logged and never fails the bump.
 */
export interface BumpEvent {
  /** The version keys moved. */
  readonly keys: readonly string[]
  /** Readable names of the groups bumped, aligned with `keys` (`user:42`; `*` for the epoch). */
  readonly groups: readonly string[]
}

export type BumpListener = (event: BumpEvent) => void | Promise<void>

/** Where a store fault happened, for logs and diagnostics. */
export interface FaultContext {
  /** What was being done: `lookup`, `store`, `bump`, `retry`, `delete`, … */
  readonly what: string
  /** The route's name (`GET /users/:userId`), for HTTP requests. */
  readonly route?: string
  /** The request's logger (Fastify `request.log`, with its reqId), when there is one. */
  readonly log?: Logger
}

const consoleLogger: Logger = {
  warn: (obj, msg) => console.warn(msg, obj),
  error: (obj, msg) => console.error(msg, obj)
}

/** Thrown (internally) when a lookup names a group whose bump is still pending. */
export class PendingBumpError extends Error {
  constructor() {
    super('a bump of one of these groups has not reached the store yet')
    this.name = 'PendingBumpError'
  }
}

export function positiveNumber(value: unknown, name: string, where = ''): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option ${name} must be a positive number, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

const RETRY_MIN_MS = 50
const RETRY_MAX_MS = 5000
const GROUP_CACHE_MAX = 1000

/**
 * The generational engine (DESIGN §1, §3), knowing nothing of HTTP.
 *
 * Every entry depends on versions: the epoch, then whatever the caller names.
 * A lookup reads (or seeds) all of them and the entry in one store call; the
 * entry key is derived from those versions, so a bump — one atomic increment —
 * makes every entry stored under the old version unreachable. Nothing is
 * scanned or deleted; orphans age out by TTL or LRU.
 *
 * A bump that cannot reach the store is kept and retried, and until it lands
 * every lookup that names one of its keys is refused (PendingBumpError), so no
 * entry from before the bump can be served in this process.
 */
export class Generations {
  readonly store: Store
  readonly prefix: string
  readonly ttl: number
  readonly timeout: number
  readonly logger: Logger
  readonly epochKey: string
  readonly entryPrefix: string
  readonly stats: Omit<CacheStats, 'pendingBumps'> = { hits: 0, misses: 0, stores: 0, bypasses: 0, collapsed: 0, bumps: 0, errors: 0 }

  /** key → sequence number of the latest failed bump of it. */
  readonly #pending = new Map<string, number>()
  #pendingSeq = 0
  #retryTimer: NodeJS.Timeout | undefined
  #retryDelay = RETRY_MIN_MS
  #retrying: Promise<void> | undefined
  /** Compiled string definitions, so a bump by name does not re-parse it every call. */
  readonly #groupCache = new Map<string, CompiledGroup>()
  readonly #deadlines: Deadlines
  readonly #bumpListeners: BumpListener[] = []

  constructor(options: GenerationsOptions = {}) {
    this.store = options.store ?? new MemoryStore()
    this.prefix = options.prefix ?? 'gc'
    if (typeof this.prefix !== 'string' || this.prefix === '' || /[\s=]|:$/.test(this.prefix)) {
      throw new GroupcacheError('GC_INVALID_OPTION', `option prefix must be a non-empty string without whitespace or "=" and not ending in ":", got ${JSON.stringify(this.prefix)}`)
    }
    this.ttl = positiveNumber(options.ttl ?? 60, 'ttl')
    this.timeout = positiveNumber(options.timeout ?? 250, 'timeout')
    this.#deadlines = new Deadlines(this.timeout)
    this.logger = options.logger ?? consoleLogger
    this.epochKey = epochKey(this.prefix)
    this.entryPrefix = entryPrefix(this.prefix)
    void this.store.checkServer?.(this.logger)
  }

  /** Compiles a definition, reusing the compiled form of a string seen before. */
  compile(def: GroupDef | unknown, where = ''): CompiledGroup {
    if (typeof def !== 'string') return compileGroup(def, where)
    let compiled = this.#groupCache.get(def)
    if (compiled === undefined) {
      compiled = compileGroup(def, where)
      if (this.#groupCache.size >= GROUP_CACHE_MAX) this.#groupCache.clear()
      this.#groupCache.set(def, compiled)
    }
    return compiled
  }

  /** The version key of a group for these values. */
  versionKey(group: CompiledGroup, values: GroupValues, request?: unknown): string {
    return versionKeyFromEncoded(this.prefix, group.encode(values, request))
  }

  /** The version key and the readable name of a group for these values (for bumps: names go to logs, events, CDNs). */
  bumpTarget(group: CompiledGroup, values: GroupValues, request?: unknown): { key: string; name: string } {
    const encoded = group.encode(values, request)
    return { key: versionKeyFromEncoded(this.prefix, encoded), name: groupName(encoded) }
  }

  /** Calls `listener` after every bump that reached the store. Returns a function that removes it. */
  onBump(listener: BumpListener): () => void {
    this.#bumpListeners.push(listener)
    return () => {
      const i = this.#bumpListeners.indexOf(listener)
      if (i >= 0) this.#bumpListeners.splice(i, 1)
    }
  }

  #bumped(keys: readonly string[], names: readonly string[] | undefined): void {
    if (this.#bumpListeners.length === 0) return
    const event: BumpEvent = { keys, groups: names ?? keys.map((k) => (k === this.epochKey ? '*' : k)) }
    for (const listener of this.#bumpListeners) {
      try {
        const done = listener(event)
        if (done instanceof Promise) done.catch((err: unknown) => this.logger.error({ err }, 'groupcache: a bump listener failed'))
      } catch (err) {
        this.logger.error({ err }, 'groupcache: a bump listener failed')
      }
    }
  }

  /**
   * Records a store fault: counts it and logs it (per-request context when
   * given). The one place faults are reported, so logging can be rate-limited
   * and the circuit breaker fed.
   */
  reportFault(err: unknown, context: FaultContext): void {
    this.stats.errors++
    const log = context.log ?? this.logger
    log.error({ err, route: context.route }, `groupcache: store ${context.what} failed; served uncached`)
  }

  /** Version keys of definitions resolved against values (TypeError when a value is missing). */
  versionKeys(defs: readonly GroupDef[], values: GroupValues = {}): string[] {
    return defs.map((def) => this.versionKey(this.compile(def), values))
  }

  /**
   * Reads the epoch and the given versions and the entry they lead to.
   * Throws PendingBumpError when one of the keys has a bump pending; the
   * store's error (or a timeout) rejects. An in-process store answers
   * synchronously.
   */
  lookup(versionKeys: readonly string[], requestKey: string): LookupResult | Promise<LookupResult> {
    return this.lookupWithEpoch([this.epochKey, ...versionKeys], requestKey)
  }

  /** {@link lookup} for a key list that already starts with the epoch key (HTTP routes precompute it). */
  lookupWithEpoch(keys: readonly string[], requestKey: string): LookupResult | Promise<LookupResult> {
    if (this.#pending.size > 0 && keys.some((key) => this.#pending.has(key))) throw new PendingBumpError()
    const found = this.store.lookup(keys, requestKey, this.entryPrefix)
    return found instanceof Promise ? this.call(found) : found
  }

  /** Writes an entry under a key a lookup returned. */
  async write(key: string, value: Buffer, ttlMs: number): Promise<void> {
    await this.call(this.store.set(key, value, ttlMs))
    this.stats.stores++
  }

  /**
   * Bumps version keys. Never rejects for a store fault: a failed bump is kept
   * and retried until it lands. Resolves true when it landed now.
   */
  async bumpKeys(keys: readonly string[], names?: readonly string[]): Promise<boolean> {
    if (keys.length === 0) return true
    try {
      await this.call(this.store.bump(keys))
      this.stats.bumps += keys.length
      this.#bumped(keys, names)
      return true
    } catch (err) {
      this.stats.errors++
      this.logger.error({ err, keys }, 'groupcache: bump failed; kept for retry, these groups bypass the cache until it lands')
      for (const key of keys) this.#pending.set(key, ++this.#pendingSeq)
      this.#scheduleRetry()
      return false
    }
  }

  /**
   * Bumps one group, resolved against values. An array here is one
   * list-of-params group; bump several with {@link bumpMany}.
   */
  async bump(def: GroupDef, values: GroupValues = {}): Promise<boolean> {
    const target = this.bumpTarget(this.compile(def), values)
    return this.bumpKeys([target.key], [target.name])
  }

  /** Bumps several groups, resolved against the same values. */
  async bumpMany(defs: readonly GroupDef[], values: GroupValues = {}): Promise<boolean> {
    const targets = defs.map((def) => this.bumpTarget(this.compile(def), values))
    return this.bumpKeys(targets.map((t) => t.key), targets.map((t) => t.name))
  }

  /** Moves the epoch on: every entry of this prefix is orphaned at once (O(1), no scan). */
  clear(): Promise<boolean> {
    return this.bumpKeys([this.epochKey], ['*'])
  }

  #scheduleRetry(): void {
    if (this.#retryTimer !== undefined || this.#retrying !== undefined) return
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#retrying = this.#retryPending().finally(() => {
        this.#retrying = undefined
        if (this.#pending.size > 0) this.#scheduleRetry()
      })
    }, this.#retryDelay)
    this.#retryTimer.unref()
  }

  async #retryPending(): Promise<void> {
    const snapshot = [...this.#pending]
    try {
      await this.call(this.store.bump(snapshot.map(([key]) => key)))
    } catch (err) {
      this.#retryDelay = Math.min(this.#retryDelay * 2, RETRY_MAX_MS)
      this.logger.warn({ err, pending: this.#pending.size }, 'groupcache: retrying pending bumps failed')
      return
    }
    this.#retryDelay = RETRY_MIN_MS
    this.stats.bumps += snapshot.length
    // A key bumped (and failed) again while this retry was under way stays pending.
    for (const [key, seq] of snapshot) if (this.#pending.get(key) === seq) this.#pending.delete(key)
    this.logger.warn({ landed: snapshot.length }, 'groupcache: pending bumps landed')
  }

  /** Bounds a store call by the timeout (in-process stores need none). */
  call<T>(promise: Promise<T>): Promise<T> {
    return this.store.local === true ? promise : this.#deadlines.bound(promise)
  }

  getStats(): CacheStats {
    return { ...this.stats, pendingBumps: this.#pending.size }
  }

  /** Tries pending bumps once more, stops retrying and closes the store. */
  async close(): Promise<void> {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    await this.#retrying
    if (this.#pending.size > 0) await this.#retryPending()
    if (this.#pending.size > 0) this.logger.error({ keys: [...this.#pending.keys()] }, 'groupcache: closing with bumps that never reached the store')
    await this.store.close()
  }
}
