import { GroupcacheError } from '../errors.js'
import { MemoryStore } from '../store/memory.js'
import type { GraceResult, LookupResult, Store } from '../store/store.js'
import { compileGroup, groupName, type CompiledGroup, type GroupDef, type GroupValues } from './groups.js'
import { Breaker, type BreakerOptions, type BreakerState } from './breaker.js'
import { bumpChannel, publishBreaker, publishBump, publishFault } from '../observability/channels.js'
import { Deadlines } from './deadlines.js'
import { FaultLog } from './fault-log.js'
import { entryPrefix, epochKey, versionKeyFromEncoded, VersionKeys } from './keys.js'

/** Where groupcache reports store faults and misses. pino's (and so Fastify's) logger fits. */
export interface Logger {
  warn(obj: unknown, msg?: string): void
  error(obj: unknown, msg?: string): void
  /** Recoveries (a pending bump landed, the breaker closed); `warn` is used when absent. */
  info?(obj: unknown, msg?: string): void
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
   * Receives store faults (warn/error, rate-limited), recoveries (info) and misses (debug).
   * @default console (warn, error and info)
   */
  logger?: Logger
  /**
   * The circuit breaker on store calls (README "Redis in production"): after `failures`
   * consecutive failed or timed-out calls, the store is not called for a
   * cool-down (lookups bypass at once, bumps are kept pending), then one call
   * probes it. `false` turns it off. Not applied to in-process stores.
   * @default { failures: 5, cooldown: 1000, maxCooldown: 10000 }
   */
  breaker?: BreakerOptions | false
  /**
   * Most version keys kept pending (bumps that have not reached the store).
   * Past it they are dropped and the epoch is bumped instead (every entry
   * orphaned: one key, always correct).
   * @default 10000
   */
  maxPendingBumps?: number
  /**
   * Store faults are logged at most once per interval (in milliseconds); the
   * others are counted and logged as one line of counts.
   * @default 10000
   */
  faultLogInterval?: number
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
  /** The circuit breaker on store calls (`closed` when there is none). */
  breaker: BreakerState
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

/** Options of a bump. */
export interface BumpOptions {
  /**
   * A soft bump: the version moves on (new requests compute fresh), but for
   * this many seconds the previous generation's entries may still answer,
   * marked stale, while one request per entry recomputes. A later hard bump
   * of the group ends the grace at once. A bump kept for retry (the store
   * failed) is retried as a hard bump.
   * @default undefined (a hard bump: the old generation is never served again)
   */
  grace?: number
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
  error: (obj, msg) => console.error(msg, obj),
  info: (obj, msg) => console.info(msg, obj)
}

/** Thrown (internally) when a lookup names a group whose bump is still pending. */
/** Why a lookup that failed was served uncached, as `Cache-Status` details name it. */
export type LookupFaultDetail = 'pending-bump' | 'store-unavailable' | 'store-timeout' | 'store-error'

/**
 * The detail of a failed lookup, shared by the HTTP layer and the function
 * cache. Only `store-timeout` and `store-error` are new faults: a pending bump
 * and the open breaker's refusal were reported when they began.
 */
export function lookupFaultDetail(err: unknown): LookupFaultDetail {
  if (err instanceof PendingBumpError) return 'pending-bump'
  const code = (err as { code?: unknown } | null)?.code
  return code === 'GC_STORE_UNAVAILABLE' ? 'store-unavailable' : code === 'GC_STORE_TIMEOUT' ? 'store-timeout' : 'store-error'
}

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
/** Keys per store call in a bump or a retry (a spread of 125k arguments overflowed the stack). */
const RETRY_CHUNK = 1000
const GROUP_CACHE_MAX = 1000
/** Group names put in one log line. */
const NAMES_LOGGED = 20

interface PendingBump {
  /** Sequence number of the latest failed bump of the key. */
  readonly seq: number
  /** Readable group name, for logs and bump listeners. */
  readonly name: string
}

function positiveInteger(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new GroupcacheError('GC_INVALID_OPTION', `option ${name} must be a positive integer, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

/** The grace of a bump in seconds (0: a hard bump); a GroupcacheError naming option grace when it is not a number of seconds. */
export function graceOf(options: BumpOptions | undefined): number {
  const grace = options?.grace
  if (grace === undefined) return 0
  if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) {
    throw new GroupcacheError('GC_INVALID_OPTION', `bump: option grace must be a number of seconds (0 or more), got ${String(grace)}`)
  }
  return grace
}

function someNames(names: readonly string[]): { groups: readonly string[]; more?: number } {
  return names.length <= NAMES_LOGGED ? { groups: names } : { groups: names.slice(0, NAMES_LOGGED), more: names.length - NAMES_LOGGED }
}

/**
 * The generational engine (README "How generational caching works"), knowing nothing of HTTP.
 *
 * Every entry depends on versions: the epoch, then whatever the caller names.
 * A lookup reads (or seeds) all of them and the entry in one store call; the
 * entry key is derived from those versions, so a bump — one atomic increment —
 * makes every entry stored under the old version unreachable. Nothing is
 * scanned or deleted; orphans age out by TTL or LRU.
 *
 * A bump that cannot reach the store is kept and retried, and until it lands
 * every lookup that names one of its keys is refused (PendingBumpError), so no
 * entry from before the bump can be served in this process. The pending set is
 * bounded: past `maxPendingBumps` it is replaced by one pending epoch bump.
 *
 * Store calls are bounded by `timeout` and go through a circuit breaker, so an
 * outage costs requests nothing once it has been noticed; faults are logged
 * rate-limited (reportFault).
 */
export class Generations {
  readonly store: Store
  readonly prefix: string
  readonly ttl: number
  readonly timeout: number
  readonly logger: Logger
  readonly epochKey: string
  readonly entryPrefix: string
  readonly maxPendingBumps: number
  readonly stats: Omit<CacheStats, 'pendingBumps' | 'breaker'> = { hits: 0, misses: 0, stores: 0, bypasses: 0, collapsed: 0, bumps: 0, errors: 0 }

  /** Version key → its pending bump. Bounded by maxPendingBumps. */
  readonly #pending = new Map<string, PendingBump>()
  #pendingSeq = 0
  #closed = false
  /** Undefined for in-process stores and when turned off. */
  readonly #breaker: Breaker | undefined
  readonly #faults: FaultLog
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
    this.maxPendingBumps = positiveInteger(options.maxPendingBumps ?? 10_000, 'maxPendingBumps')
    this.#faults = new FaultLog(positiveNumber(options.faultLogInterval ?? 10_000, 'faultLogInterval'), this.logger)
    if (options.breaker === false || this.store.local === true) this.#breaker = undefined
    else {
      if (options.breaker !== undefined && (options.breaker === null || typeof options.breaker !== 'object')) {
        throw new GroupcacheError('GC_INVALID_OPTION', `option breaker must be an object or false, got ${JSON.stringify(options.breaker)}`)
      }
      const breaker = new Breaker(options.breaker ?? {})
      breaker.onChange = (from, to, detail) => {
        publishBreaker(this.prefix, from, to)
        if (to === 'open') this.logger.warn({ from, ...detail }, `groupcache: store circuit breaker open: the store is not called for ${detail.cooldown} ms; requests are served uncached`)
        else if (to === 'closed') this.#info({ from }, 'groupcache: store circuit breaker closed: the store answers again')
      }
      this.#breaker = breaker
    }
    this.epochKey = epochKey(this.prefix)
    this.entryPrefix = entryPrefix(this.prefix)
    this.store.attach?.({ prefix: this.prefix, epochKey: this.epochKey, logger: this.logger, reportFault: (err, what) => this.reportFault(err, { what }) })
    void this.store.checkServer?.(this.logger)
  }

  #info(obj: unknown, msg: string): void {
    if (this.logger.info !== undefined) this.logger.info(obj, msg)
    else this.logger.warn(obj, msg)
  }

  /** True when a store call may be made now (the breaker is closed, or this call is its probe). */
  #admit(): boolean {
    return this.#breaker === undefined || this.#breaker.admit()
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

  /** Version keys by encoding (H1's memo, lib/core/keys.ts): param routes hash each identity once. Created on first use, after the prefix is set. */
  #versionKeys: VersionKeys | undefined

  /** The version key of a group for these values. */
  versionKey(group: CompiledGroup, values: GroupValues, request?: unknown): string {
    this.#versionKeys ??= new VersionKeys(this.prefix)
    return this.#versionKeys.of(group, values, request)
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

  #bumped(keys: readonly string[], names: readonly string[] | undefined, soft: boolean, retried: boolean): void {
    if (this.#bumpListeners.length === 0 && !bumpChannel.hasSubscribers) return
    const event: BumpEvent = { keys, groups: names ?? keys.map((k) => (k === this.epochKey ? '*' : k)) }
    publishBump(this.prefix, keys, event.groups, soft, retried)
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
    // A refusal by the open breaker is not a new fault: the faults that opened it were reported.
    if ((err as { code?: unknown } | null)?.code === 'GC_STORE_UNAVAILABLE') return
    this.stats.errors++
    publishFault(this.prefix, context.what, context.route, err)
    this.#faults.report(context.what, context.log ?? this.logger, { err, route: context.route }, `groupcache: store ${context.what} failed; served uncached`)
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
    if (this.#breaker !== undefined && !this.#breaker.admit()) throw this.#breaker.refusal()
    const found = this.store.lookup(keys, requestKey, this.entryPrefix)
    return found instanceof Promise ? this.call(found) : found
  }

  /** Writes an entry under a key a lookup returned. */
  async write(key: string, value: Buffer, ttlMs: number): Promise<void> {
    if (this.#breaker !== undefined && !this.#breaker.admit()) throw this.#breaker.refusal()
    await this.call(this.store.set(key, value, ttlMs))
    this.stats.stores++
  }

  /**
   * Bumps version keys. Never rejects for a store fault: a failed bump (or
   * one refused by the open breaker) is kept and retried until it lands.
   * Resolves true when it landed now. `names` are the groups' readable names
   * (for logs and bump listeners), aligned with `keys`.
   */
  async bumpKeys(keys: readonly string[], names?: readonly string[], options?: BumpOptions): Promise<boolean> {
    if (keys.length === 0) return true
    const graceMs = graceOf(options) * 1000
    let failure: unknown
    if (this.#admit()) {
      try {
        // In chunks: one store call with 125k keys overflowed the stack (a spread of its arguments).
        const soft = graceMs > 0 ? { graceMs } : undefined
        for (let start = 0; start < keys.length; start += RETRY_CHUNK) {
          await this.call(this.store.bump(keys.length <= RETRY_CHUNK ? keys : keys.slice(start, start + RETRY_CHUNK), soft))
        }
        this.stats.bumps += keys.length
        this.#bumped(keys, names, soft !== undefined, false)
        return true
      } catch (err) {
        failure = err
      }
    } else {
      failure = this.#breaker?.refusal()
    }
    const groups = names ?? keys
    this.stats.errors++
    publishFault(this.prefix, 'bump', undefined, failure)
    this.#faults.report('bump', this.logger, { err: failure, ...someNames(groups) }, 'groupcache: bump failed; kept for retry, these groups bypass the cache until it lands')
    this.#keep(keys, groups)
    this.#scheduleRetry()
    return false
  }

  /**
   * Keeps failed bumps for the retry. Once the epoch is pending, nothing more
   * needs keeping: its bump orphans every entry. Past the bound, the pending
   * keys are dropped and the epoch is bumped instead.
   */
  #keep(keys: readonly string[], names: readonly string[]): void {
    if (this.#pending.has(this.epochKey)) return
    keys.forEach((key, i) => this.#pending.set(key, { seq: ++this.#pendingSeq, name: names[i] as string }))
    if (this.#pending.size <= this.maxPendingBumps) return
    this.logger.warn({ dropped: this.#pending.size, maxPendingBumps: this.maxPendingBumps }, 'groupcache: too many pending bumps; dropped them and will bump the epoch instead (every entry of this cache is orphaned once it lands)')
    this.#pending.clear()
    this.#pending.set(this.epochKey, { seq: ++this.#pendingSeq, name: '*' })
  }

  /**
   * Bumps one group, resolved against values. An array here is one
   * list-of-params group; bump several with {@link bumpMany}.
   */
  async bump(def: GroupDef, values: GroupValues = {}, options?: BumpOptions): Promise<boolean> {
    const target = this.bumpTarget(this.compile(def), values)
    return this.bumpKeys([target.key], [target.name], options)
  }

  /** Bumps several groups, resolved against the same values. */
  async bumpMany(defs: readonly GroupDef[], values: GroupValues = {}, options?: BumpOptions): Promise<boolean> {
    const targets = defs.map((def) => this.bumpTarget(this.compile(def), values))
    return this.bumpKeys(targets.map((t) => t.key), targets.map((t) => t.name), options)
  }

  /**
   * The previous generation's entry for a request that missed, when a soft
   * bump of one of its keys is within its grace (README "Soft bumps and stale-if-error"). Miss path only.
   * Undefined when the store has no soft bumps or a bump is pending.
   */
  lookupGrace(keys: readonly string[], versions: readonly string[], requestKey: string): GraceResult | undefined | Promise<GraceResult | undefined> {
    if (this.store.lookupGrace === undefined) return undefined
    if (this.#breaker !== undefined && !this.#breaker.admit()) throw this.#breaker.refusal()
    const found = this.store.lookupGrace(keys, versions, requestKey, this.entryPrefix)
    return found instanceof Promise ? this.call(found) : found
  }

  /** Moves the epoch on: every entry of this prefix is orphaned at once (O(1), no scan). */
  clear(): Promise<boolean> {
    return this.bumpKeys([this.epochKey], ['*'])
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retryTimer !== undefined || this.#retrying !== undefined) return
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined
      this.#retrying = this.#retryPending().finally(() => {
        this.#retrying = undefined
        if (this.#pending.size > 0) this.#scheduleRetry()
      })
    }, this.#retryDelay)
    this.#retryTimer.unref()
  }

  /**
   * Sends pending bumps in chunks. A pending epoch bump is sent alone: it
   * orphans every entry, so it settles every other pending key too.
   */
  async #retryPending(): Promise<void> {
    const snapshot = [...this.#pending]
    const epoch = this.#pending.get(this.epochKey)
    const chunks: [string, PendingBump][][] = []
    if (epoch !== undefined) chunks.push([[this.epochKey, epoch]])
    else for (let start = 0; start < snapshot.length; start += RETRY_CHUNK) chunks.push(snapshot.slice(start, start + RETRY_CHUNK))
    let landed = 0
    for (const chunk of chunks) {
      if (!this.#admit()) return
      try {
        await this.call(this.store.bump(chunk.map(([key]) => key)))
      } catch (err) {
        this.#retryDelay = Math.min(this.#retryDelay * 2, RETRY_MAX_MS)
        publishFault(this.prefix, 'retry', undefined, err)
        this.#faults.report('retry', this.logger, { err, pending: this.#pending.size }, 'groupcache: retrying pending bumps failed')
        return
      }
      landed += chunk.length
      this.stats.bumps += chunk.length
      // A key bumped (and failed) again while this retry was under way stays pending.
      for (const [key, bump] of epoch === undefined ? chunk : snapshot) {
        if (this.#pending.get(key)?.seq === bump.seq) this.#pending.delete(key)
      }
      // A retry lands as a hard bump (a soft bump that failed is not softened later).
      this.#bumped(chunk.map(([key]) => key), chunk.map(([, bump]) => bump.name), false, true)
    }
    this.#retryDelay = RETRY_MIN_MS
    this.#info({ landed }, 'groupcache: pending bumps landed')
  }

  /** Bounds a store call by the timeout and tells the breaker how it ended (in-process stores need neither). */
  call<T>(promise: Promise<T>): Promise<T> {
    return this.store.local === true ? promise : this.#deadlines.bound(promise, this.#breaker)
  }

  getStats(): CacheStats {
    return { ...this.stats, pendingBumps: this.#pending.size, breaker: this.#breaker?.state ?? 'closed' }
  }

  /**
   * Stops the retry loop, tries pending bumps once more (unless the breaker
   * is open: the store is known to be down) and closes the store.
   */
  async close(): Promise<void> {
    this.#closed = true
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer)
    this.#retryTimer = undefined
    await this.#retrying
    if (this.#pending.size > 0) await this.#retryPending()
    if (this.#pending.size > 0) {
      const names = [...this.#pending.values()].map((bump) => bump.name)
      this.logger.error({ keys: [...this.#pending.keys()].slice(0, NAMES_LOGGED), ...someNames(names) }, 'groupcache: closing with bumps that never reached the store')
    }
    this.#faults.flush()
    await this.store.close()
  }
}
