import { checkOptionNames, GroupcacheError } from '../errors.js'
import { answerLookup, failLookup, lookupChannel, publishNotStored, publishStored, startLookup, suspendLookup, type LookupContext } from '../observability/channels.js'
import { storeKind } from '../observability/stats.js'
import { lookupFaultDetail, positiveNumber, Generations, PendingBumpError, type BumpOptions, type GenerationsOptions } from './generations.js'
import { groupName, type CompiledGroup, type GroupDef, type GroupValues } from './groups.js'
import { encodeMapping } from './encoding.js'
import { versionKey } from './keys.js'
import { canonicalArguments, canonicalText, decodeValue, encodeValue } from './values.js'

export interface GenerationalCacheOptions extends GenerationsOptions {
  /**
   * The function-cache switch (the seed's `ignore_locally`): when false, `get`
   * misses, `set` stores nothing and wrapped functions always run. Bumps still
   * reach the store, so other processes stay correct.
   * @default true
   */
  enabled?: boolean
  /**
   * Longest wait, in milliseconds, of a call that found an identical
   * computation running (`getOrSet`, `wrap`). After it, the call computes
   * itself and takes the lead, so a hung computation never captures later
   * calls; the one it replaced is not stored when it finishes.
   * @default 10000
   */
  coalesceTimeout?: number
  /**
   * Most computations tracked at once for coalescing. A call past it runs its
   * computation without storing the result (a result this cache cannot track
   * could not be cancelled by a `delete`).
   * @default 10000
   */
  maxInflight?: number
}

export interface SetOptions {
  /**
   * Seconds the entry lives (the seed's `timeout`).
   * @default the cache's `ttl`
   */
  ttl?: number
}

/** The four calls of the seed's `CustomUseGenCache`, with the groups bound. */
export interface BoundCache {
  readonly groups: readonly GroupDef[]
  get<T = unknown>(values?: GroupValues): Promise<T | undefined>
  set(values: GroupValues, value: unknown, options?: SetOptions): Promise<boolean>
  getOrSet<T>(values: GroupValues, compute: () => T | Promise<T>, options?: SetOptions): Promise<T>
  /**
   * Bumps every bound group the values can resolve (a group naming a param the
   * values lack is left alone; groups with no params are always bumped).
   * A TypeError when no group can be resolved. `{ grace }`: a soft bump (see
   * {@link GenerationalCache.invalidate}).
   */
  invalidate(values?: GroupValues, options?: BumpOptions): Promise<boolean>
  delete(values?: GroupValues): Promise<void>
}

export interface WrapOptions {
  /**
   * Stable name in the key (replaces the seed's module/function/line magic #3).
   * @default the function's name (an anonymous function needs one)
   */
  name?: string
  /** Groups the result depends on; their params are read from the first argument's fields. */
  groups?: readonly GroupDef[]
  /** Seconds a result lives. @default the cache's `ttl` */
  ttl?: number
  /** Fields of the first argument left out of the key. @default [] */
  exclude?: readonly string[]
  /** When false, the function always runs. @default the cache's `enabled` */
  enabled?: boolean
}

export type Wrapped<A extends unknown[], R> = ((...args: A) => Promise<Awaited<R>>) & {
  /** Drops the cached result for these arguments. */
  invalidate(...args: A): Promise<void>
  /** Orphans every cached result of this function (bumps its generation). */
  clear(): Promise<boolean>
}

interface Address {
  versionKeys: string[]
  requestKey: string
  /**
   * What the call is, for diagnostics and fault logs (in the place of an HTTP
   * route: bounded, safe as a metric label): `wrap <name>`, or `function cache`.
   */
  label: string
  /** Readable names of the groups (computed only when someone subscribes to lookups). */
  names: readonly string[]
}

/** The label of calls made through get/set/getOrSet/bind. */
const DIRECT = 'function cache'
const NO_NAMES: readonly string[] = []

/** A computation running for an entry key: the one identical calls join. */
interface Flight {
  /** The encoded result; rejects with the computation's error. */
  readonly result: Promise<Buffer>
  /** Set by a delete, set or takeover: the result must not be stored. */
  cancelled: boolean
  /** The store write of the result, once started. */
  writing?: Promise<void>
}

const WAIT_TIMED_OUT = Symbol('timed out')

const CACHE_OPTION_NAMES: readonly (keyof GenerationalCacheOptions)[] = [
  'store',
  'prefix',
  'ttl',
  'timeout',
  'logger',
  'breaker',
  'maxPendingBumps',
  'faultLogInterval',
  'enabled',
  'coalesceTimeout',
  'maxInflight'
]

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

/**
 * The generational cache: the engine the HTTP adapters use, plus the function
 * cache of HubSpot's hscacheutils (README "Function cache") on the same versions and store.
 *
 * An entry's key embeds the versions of its groups (magic #1: `name:param`
 * values come from the call's values) and the canonical text of every value no
 * group consumed (magic #2), so `invalidate` of a group is one increment.
 */
export class GenerationalCache extends Generations {
  readonly enabled: boolean
  readonly coalesceTimeout: number
  readonly maxInflight: number
  /**
   * Computations running by entry key (at most one tracked per key, at most
   * `maxInflight` in all): identical calls join them, and a delete or set
   * cancels their store write.
   */
  readonly #flights = new Map<string, Flight>()

  constructor(options: GenerationalCacheOptions = {}) {
    if (options === null || typeof options !== 'object') throw new GroupcacheError('GC_INVALID_OPTION', `GenerationalCache: options must be an object, got ${String(options)}`)
    checkOptionNames('GenerationalCache', options, CACHE_OPTION_NAMES)
    const { enabled = true, coalesceTimeout = 10_000, maxInflight = 10_000, ...rest } = options
    super(rest)
    if (typeof enabled !== 'boolean') throw new GroupcacheError('GC_INVALID_OPTION', `option enabled must be a boolean, got ${JSON.stringify(enabled)}`)
    if (!Number.isSafeInteger(maxInflight) || maxInflight < 1) {
      throw new GroupcacheError('GC_INVALID_OPTION', `option maxInflight must be a positive integer, got ${String(maxInflight)}`)
    }
    this.enabled = enabled
    this.coalesceTimeout = positiveNumber(coalesceTimeout, 'coalesceTimeout')
    this.maxInflight = maxInflight
  }

  /** The cached value, or undefined on a miss (or when the store fails: it is logged). */
  async get<T = unknown>(groups: readonly GroupDef[], values: GroupValues = {}): Promise<T | undefined> {
    return this.#get(this.#address(this.#compileAll(groups), values)) as Promise<T | undefined>
  }

  /** Stores a value. Resolves false when the store failed (logged); rejects for a value that cannot be stored. */
  async set(groups: readonly GroupDef[], values: GroupValues, value: unknown, options: SetOptions = {}): Promise<boolean> {
    const bytes = encodeValue(value, 'set')
    const ttlMs = this.#ttlMs(options.ttl)
    return this.#set(this.#address(this.#compileAll(groups), values), bytes, ttlMs)
  }

  /** The cached value, or `compute()`'s result stored; concurrent identical calls compute once. */
  async getOrSet<T>(groups: readonly GroupDef[], values: GroupValues, compute: () => T | Promise<T>, options: SetOptions = {}): Promise<T> {
    return this.#getOrSet(this.#address(this.#compileAll(groups), values), compute, this.#ttlMs(options.ttl), this.enabled) as Promise<T>
  }

  /**
   * Bumps these groups' generations. Never rejects for a store fault: the bump
   * is retried. With `{ grace }` (seconds) it is a soft bump: while one
   * `getOrSet`/`wrap` call recomputes an entry, identical calls get the
   * previous generation's value instead of waiting, until the grace ends
   * (`get` never returns the old generation).
   */
  async invalidate(groups: readonly GroupDef[], values: GroupValues = {}, options?: BumpOptions): Promise<boolean> {
    return this.bumpMany(groups, values, options)
  }

  /** Drops the one entry these groups and values lead to. */
  async delete(groups: readonly GroupDef[], values: GroupValues = {}): Promise<void> {
    await this.#delete(this.#address(this.#compileAll(groups), values))
  }

  /** The seed's `CustomUseGenCache`: the same calls with the groups given once. */
  bind(groups: readonly GroupDef[]): BoundCache {
    const compiled = this.#compileAll(groups)
    return {
      groups,
      get: (values = {}) => this.#get(this.#address(compiled, values)) as Promise<never>,
      set: async (values, value, options = {}) => this.#set(this.#address(compiled, values), encodeValue(value, 'set'), this.#ttlMs(options.ttl)),
      getOrSet: async (values, compute, options = {}) => this.#getOrSet(this.#address(compiled, values), compute, this.#ttlMs(options.ttl), this.enabled) as Promise<never>,
      invalidate: async (values = {}, options) => {
        const resolvable = compiled.filter((g) => g.params === null || g.params.every((p) => values[p] !== undefined))
        if (resolvable.length === 0) {
          // Resolving the first group raises the TypeError naming it and its missing param.
          this.versionKey(compiled[0] as CompiledGroup, values)
        }
        // Readable names with the keys: bump listeners and CDN purgers name groups, never hashes.
        const targets = resolvable.map((g) => this.bumpTarget(g, values))
        return this.bumpKeys(targets.map((t) => t.key), targets.map((t) => t.name), options)
      },
      delete: async (values = {}) => this.#delete(this.#address(compiled, values))
    }
  }

  /**
   * `@gen_cache.wrap`: the function, cached by its arguments. Values for groups
   * and the key come from the first argument when it is a plain object; other
   * arguments are part of the key as they are.
   */
  wrap<A extends unknown[], R>(fn: (...args: A) => R, options: WrapOptions = {}): Wrapped<A, R> {
    if (typeof fn !== 'function') throw new GroupcacheError('GC_INVALID_OPTION', `wrap: expected a function, got ${typeof fn}`)
    const name = options.name ?? fn.name
    if (typeof name !== 'string' || name === '') {
      throw new GroupcacheError('GC_INVALID_OPTION', 'wrap: option name is required for an anonymous function (it keeps keys stable across deploys)')
    }
    const where = `wrap ${name}: `
    const groups = (options.groups ?? []).map((def) => this.compile(def, where))
    const exclude = new Set(options.exclude ?? [])
    const ttlMs = this.#ttlMs(options.ttl, where)
    const enabled = options.enabled ?? this.enabled
    // Every result of this function depends on its own generation too, so clear() reaches all of them.
    const fnKey = versionKey(this.prefix, { function: name })
    const fnName = groupName(encodeMapping({ function: name }))
    const label = `wrap ${name}`

    const addressOf = (args: A): Address => {
      const [first, ...rest] = args
      const values = isPlainObject(first) ? first : {}
      const keyed: Record<string, unknown> = {}
      for (const field of Object.keys(values)) if (!exclude.has(field)) keyed[field] = values[field]
      const address = isPlainObject(first)
        ? this.#address(groups, keyed, name, rest, values, 'arguments[0]', 1, label)
        : this.#address(groups, keyed, name, args, values, 'arguments[0]', 0, label)
      address.versionKeys.unshift(fnKey)
      if (address.names !== NO_NAMES) address.names = [fnName, ...address.names]
      return address
    }
    const wrapped = (async (...args: A) => this.#getOrSet(addressOf(args), () => fn(...args), ttlMs, enabled)) as Wrapped<A, R>
    wrapped.invalidate = async (...args: A) => this.#delete(addressOf(args))
    wrapped.clear = () => this.bumpKeys([fnKey], [fnName])
    Object.defineProperty(wrapped, 'name', { value: `cached ${name}` })
    return wrapped
  }

  #compileAll(groups: readonly GroupDef[]): CompiledGroup[] {
    if (!Array.isArray(groups)) {
      throw new GroupcacheError('GC_INVALID_GROUP', `groups must be an array of group definitions (a list-of-params group is a nested array), got ${typeof groups}`)
    }
    return groups.map((def) => this.compile(def))
  }

  #ttlMs(ttl: number | undefined, where = ''): number {
    return positiveNumber(ttl ?? this.ttl, 'ttl', where) * 1000
  }

  /**
   * The version keys of the groups (magic #1: their params come from the values)
   * and the request key: the name and every value no group consumed (magic #2).
   */
  #address(groups: readonly CompiledGroup[], keyed: GroupValues, name = '', args: readonly unknown[] = [], all: GroupValues = keyed, valuesPath = 'values', firstArg = 0, label = DIRECT): Address {
    const consumed = new Set<string>()
    const versionKeys = groups.map((group) => {
      for (const p of group.params ?? []) consumed.add(p)
      return this.versionKey(group, all)
    })
    const rest: Record<string, unknown> = {}
    for (const field of Object.keys(keyed)) if (!consumed.has(field)) rest[field] = keyed[field]
    // Names only for subscribers: nothing is allocated for them otherwise.
    const names = lookupChannel.hasSubscribers ? groups.map((group) => this.bumpTarget(group, all).name) : NO_NAMES
    return { versionKeys, requestKey: JSON.stringify(['fn', name, canonicalText(rest, valuesPath), canonicalArguments(args, firstArg)]), label, names }
  }

  /** Starts the lookup trace of a call (only when someone subscribes). */
  #trace(address: Address): LookupContext | undefined {
    if (!lookupChannel.hasSubscribers) return undefined
    return startLookup(this.prefix, (this.#storeKind ??= storeKind(this.store)), address.label, 'CALL', address.requestKey, address.names)
  }

  #storeKind: string | undefined

  /**
   * Looks an address up and counts the hit or miss (a miss is logged at debug
   * level: the seed's log_misses). Store faults reject; the trace is answered
   * by the caller, which knows what a miss becomes.
   */
  async #read(address: Address, trace: LookupContext | undefined): Promise<{ value: unknown; entryKey: string; versions: readonly string[] }> {
    let found = this.lookup(address.versionKeys, address.requestKey)
    if (found instanceof Promise) {
      suspendLookup(trace)
      found = await found
    }
    const value = found.entry === undefined ? undefined : decodeValue(found.entry)
    if (value !== undefined) {
      this.stats.hits++
    } else {
      this.stats.misses++
      this.logger.debug?.({ requestKey: address.requestKey }, 'groupcache: miss')
    }
    return { value, entryKey: found.entryKey, versions: found.versions }
  }

  async #get(address: Address): Promise<unknown> {
    if (!this.enabled) return undefined
    const trace = this.#trace(address)
    try {
      const { value } = await this.#read(address, trace)
      answerLookup(trace, value === undefined ? 'miss' : 'hit')
      return value
    } catch (err) {
      this.#lookupFault(err, address, trace)
      return undefined
    }
  }

  async #set(address: Address, bytes: Buffer, ttlMs: number): Promise<boolean> {
    if (!this.enabled) return false
    try {
      const found = await this.lookup(address.versionKeys, address.requestKey)
      await this.#cancel(found.entryKey)
      await this.write(found.entryKey, bytes, ttlMs)
      publishStored(this.prefix, address.label, bytes.length, ttlMs / 1000)
      return true
    } catch (err) {
      this.#fault(err, 'set', address)
      publishNotStored(this.prefix, address.label, err instanceof PendingBumpError ? 'pending-bump' : 'store-error')
      return false
    }
  }

  async #delete(address: Address): Promise<void> {
    try {
      const found = await this.lookup(address.versionKeys, address.requestKey)
      await this.#cancel(found.entryKey)
      await this.call(this.store.delete(found.entryKey))
    } catch (err) {
      this.#fault(err, 'delete', address)
    }
  }

  async #getOrSet(address: Address, compute: () => unknown, ttlMs: number, enabled: boolean): Promise<unknown> {
    if (!enabled) return compute()
    const trace = this.#trace(address)
    let entryKey: string
    let versions: readonly string[]
    try {
      const read = await this.#read(address, trace)
      if (read.value !== undefined) {
        answerLookup(trace, 'hit')
        return read.value
      }
      entryKey = read.entryKey
      versions = read.versions
    } catch (err) {
      this.#lookupFault(err, address, trace)
      return compute()
    }
    if (this.#flights.has(entryKey)) {
      suspendLookup(trace)
      // During a soft bump's grace, the previous generation answers at once instead of waiting for the recompute.
      const stale = await this.#graceValue(address, versions)
      if (stale !== undefined) {
        answerLookup(trace, 'stale', undefined, 'soft-bump')
        return stale
      }
    }
    let joined = false
    for (let leader = this.#flights.get(entryKey); leader !== undefined; leader = this.#flights.get(entryKey)) {
      if (!joined) {
        this.stats.collapsed++
        suspendLookup(trace)
      }
      joined = true
      let bytes: Buffer | typeof WAIT_TIMED_OUT
      try {
        bytes = await this.#wait(leader.result)
      } catch (err) {
        // The leader's computation failed: this call shares its error, as it would have shared its value.
        answerLookup(trace, 'collapsed')
        throw err
      }
      // The leader's bytes are decoded again for each follower: no caller shares an object with another.
      if (bytes !== WAIT_TIMED_OUT) {
        answerLookup(trace, 'collapsed')
        return decodeValue(bytes)
      }
      // Still the one that hung: it is superseded, and not stored when it finishes late.
      if (this.#flights.get(entryKey) === leader) this.#drop(entryKey, leader)
    }
    answerLookup(trace, 'miss')
    if (this.#flights.size >= this.maxInflight) {
      this.stats.bypasses++
      publishNotStored(this.prefix, address.label, 'inflight-limit')
      return compute()
    }
    let value: unknown
    const flight: Flight = {
      result: (async () => {
        value = await compute()
        return encodeValue(value, 'result')
      })(),
      cancelled: false
    }
    this.#flights.set(entryKey, flight)
    try {
      const bytes = await flight.result
      if (flight.cancelled) publishNotStored(this.prefix, address.label, 'cancelled')
      else {
        flight.writing = this.write(entryKey, bytes, ttlMs).then(
          () => publishStored(this.prefix, address.label, bytes.length, ttlMs / 1000),
          (err: unknown) => {
            this.#fault(err, 'set', address)
            publishNotStored(this.prefix, address.label, 'store-error')
          }
        )
        await flight.writing
      }
      return value
    } finally {
      if (this.#flights.get(entryKey) === flight) this.#flights.delete(entryKey)
    }
  }

  /** The previous generation's value while a soft bump's grace lasts; undefined otherwise or when the store fails. */
  async #graceValue(address: Address, versions: readonly string[]): Promise<unknown> {
    try {
      const found = await this.lookupGrace([this.epochKey, ...address.versionKeys], versions, address.requestKey)
      if (found?.entry === undefined || found.until <= Date.now()) return undefined
      this.stats.hits++
      return decodeValue(found.entry)
    } catch (err) {
      this.#fault(err, 'grace', address)
      return undefined
    }
  }

  /** The leader's result, or WAIT_TIMED_OUT after `coalesceTimeout`. */
  async #wait(result: Promise<Buffer>): Promise<Buffer | typeof WAIT_TIMED_OUT> {
    let timer: NodeJS.Timeout | undefined
    const timedOut = new Promise<typeof WAIT_TIMED_OUT>((resolve) => {
      timer = setTimeout(resolve, this.coalesceTimeout, WAIT_TIMED_OUT)
    })
    try {
      return await Promise.race([result, timedOut])
    } finally {
      clearTimeout(timer)
    }
  }

  #drop(entryKey: string, flight: Flight): void {
    flight.cancelled = true
    this.#flights.delete(entryKey)
  }

  /**
   * A delete or set of this entry has begun: a computation running for it
   * must not store its (older) result, and later calls must not join it. A
   * write already under way is awaited, so the caller's own delete or write
   * lands after it.
   */
  async #cancel(entryKey: string): Promise<void> {
    const flight = this.#flights.get(entryKey)
    if (flight === undefined) return
    this.#drop(entryKey, flight)
    await flight.writing
  }

  /**
   * A store fault of a call: counted and logged rate-limited with the call's
   * label (reportFault). A refusal because a bump of one of its groups is
   * pending is a bypass, not a fault.
   */
  #fault(err: unknown, what: string, address: Address): void {
    if (err instanceof PendingBumpError) {
      this.stats.bypasses++
      return
    }
    this.reportFault(err, { what, route: address.label })
  }

  /** A lookup that failed: the trace says why the call was served uncached, as an HTTP bypass would. */
  #lookupFault(err: unknown, address: Address, trace: LookupContext | undefined): void {
    const detail = lookupFaultDetail(err)
    // As the HTTP layer does: only a new fault is an error on the trace.
    if (detail === 'store-timeout' || detail === 'store-error') failLookup(trace, err)
    this.#fault(err, 'lookup', address)
    answerLookup(trace, 'bypass', undefined, detail)
  }
}
