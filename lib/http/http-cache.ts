import type { IncomingHttpHeaders } from 'node:http'
import { GroupcacheError, GroupcacheTypeError } from '../errors.js'
import { encodeMapping, valueToString } from '../core/encoding.js'
import { PendingBumpError } from '../core/generations.js'
import type { LookupResult } from '../store/store.js'
import type { GenerationalCache } from '../core/generational-cache.js'
import type { GroupDef, GroupValues } from '../core/groups.js'
import { versionKeyFromEncoded } from '../core/keys.js'
import { ageValue, CACHE_STATUS, type BypassDetail } from './cache-status.js'
import { decodeEntry, encodeEntry, makeEntry, storableHeaders, type Entry, type HeaderBag, type StoredHeaders } from './entry.js'
import { ifNoneMatchMatches, unshareableReason } from './policy.js'
import { requestKey } from './request-key.js'
import { compileRoute, routeKeyFor, type CompiledRoute, type RouteDefaults, type RouteInfo } from './route.js'

/** What an adapter tells the HTTP layer about a request. */
export interface HttpRequest {
  readonly method: string
  /** Path and query as received. */
  readonly url: string
  readonly headers: IncomingHttpHeaders
  /** Route params. */
  readonly params: GroupValues
  /** The framework's request, handed to function groups. */
  readonly raw: unknown
}

/** A response the adapter writes as it is (a hit, a 304 or a collapsed miss). */
export interface ReadyResponse {
  readonly kind: 'serve'
  readonly status: number
  /** Shared between responses: copy, never mutate. */
  readonly headers: StoredHeaders
  /** Undefined for a 304. */
  readonly body: Buffer | undefined
  readonly cacheStatus: string
  /** Only on hits. */
  readonly age: string | undefined
}

/** A miss in progress: the adapter runs the handler, then calls finish() or abandon(). */
export interface Miss {
  readonly kind: 'miss'
  readonly route: CompiledRoute
  readonly entryKey: string
  /** False for HEAD: its body is not the GET body, so it is never stored or shared. */
  readonly storable: boolean
  done: boolean
  readonly followers: ((entry: Entry | undefined) => void) | undefined
}

export type Begin = ReadyResponse | Miss | { readonly kind: 'bypass'; readonly cacheStatus: string }

/** Calls `then` with the value now, or when the promise settles: keeps synchronous answers synchronous. */
export function whenReady<T>(value: T | Promise<T>, then: (value: T) => void): void {
  if (value instanceof Promise) void value.then(then)
  else then(value)
}

export interface Finish {
  readonly cacheStatus: string
  /** Set on the response when it was stored, so clients can revalidate against later hits. */
  readonly etag: string | undefined
}

const BYPASS = {} as Record<BypassDetail, { kind: 'bypass'; cacheStatus: string }>
for (const detail of ['method', 'authorization', 'pending-bump', 'group-error', 'store-error', 'store-timeout', 'store-unavailable'] as const) {
  BYPASS[detail] = { kind: 'bypass', cacheStatus: CACHE_STATUS.bypass(detail) }
}

/**
 * The HTTP layer shared by the Fastify and Express adapters: it decides what
 * is served, stored and shared, so both frameworks behave alike by construction.
 * Adapters translate requests and responses; they make no caching decisions.
 */
export class HttpCache {
  /** Misses in flight by entry key (GET only), for coalescing. */
  readonly #inflight = new Map<string, Promise<Entry | undefined>>()

  constructor(
    readonly gens: GenerationalCache,
    readonly defaults: RouteDefaults
  ) {}

  compile(route: RouteInfo, config: unknown): CompiledRoute {
    return compileRoute(this.gens, this.defaults, route, config)
  }

  /** The epoch, route generation and group keys of one request. */
  versionKeys(route: CompiledRoute, given: GroupValues, raw: unknown): readonly string[] {
    if (route.staticKeys !== undefined) return route.staticKeys
    const params = withAbsentParams(route, given)
    const keys = [this.gens.epochKey, route.routeKey]
    if (route.viewGroup) {
      keys.push(this.#viewGroupKey(route.pattern, params))
      return keys
    }
    for (const { key, group } of route.groups) keys.push(key ?? this.gens.versionKey(group, params, raw))
    return keys
  }

  /**
   * Looks a request up. Versions are read here, before the handler runs, and
   * the miss carries the key built from them: a bump landing while the handler
   * runs changes the versions, so the entry it stores is already orphaned.
   * Answers synchronously when the store does (the memory store): the hit path
   * then allocates no promise.
   */
  begin(route: CompiledRoute, req: HttpRequest): Begin | Promise<Begin> {
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.#bypass('method')
    if (!route.authorization && req.headers.authorization !== undefined) return this.#bypass('authorization')
    let keys: readonly string[]
    try {
      keys = this.versionKeys(route, req.params, req.raw)
    } catch (err) {
      // A function group threw or a value was bad: the route's fault, not the store's.
      this.gens.logger.warn({ err, route: route.name }, 'groupcache: a group could not be resolved for this request; served uncached')
      return this.#bypass('group-error')
    }
    let found: LookupResult | Promise<LookupResult>
    try {
      found = this.gens.lookupWithEpoch(keys, requestKey(route, req.url, req.headers))
    } catch (err) {
      return this.#bypass(this.#storeFault(err, route))
    }
    if (found instanceof Promise) {
      return found.then(
        (result) => this.#answer(route, req, result),
        (err: unknown) => this.#bypass(this.#storeFault(err, route))
      )
    }
    return this.#answer(route, req, found)
  }

  #answer(route: CompiledRoute, req: HttpRequest, found: LookupResult): Begin | Promise<Begin> {
    const stats = this.gens.stats
    const entry = found.entry === undefined ? undefined : decodeEntry(found.entry, this.gens.store.local === true ? undefined : found.entryKey)
    if (entry !== undefined) {
      const now = Date.now()
      const expires = entry.storedAt + entry.ttlMs
      // Fresh; or stale within the window while an identical request revalidates.
      if (expires > now || (now < expires + route.staleMs && this.#inflight.has(found.entryKey))) {
        stats.hits++
        const cacheStatus = CACHE_STATUS.hit(Math.trunc((expires - now) / 1000))
        const age = ageValue(Math.max(0, Math.floor((now - entry.storedAt) / 1000)))
        if (ifNoneMatchMatches(req.headers['if-none-match'], entry.etag)) {
          return { kind: 'serve', status: 304, headers: entry.notModifiedHeaders, body: undefined, cacheStatus, age }
        }
        return { kind: 'serve', status: entry.status, headers: entry.headers, body: entry.body, cacheStatus, age }
      }
    }
    stats.misses++
    const { entryKey } = found
    if (req.method === 'HEAD') return { kind: 'miss', route, entryKey, storable: false, done: false, followers: undefined }
    const leading = this.#inflight.get(entryKey)
    if (leading !== undefined) {
      return leading.then((shared): Begin => {
        if (shared === undefined) return { kind: 'miss', route, entryKey, storable: true, done: false, followers: undefined }
        stats.collapsed++
        return { kind: 'serve', status: shared.status, headers: shared.headers, body: shared.body, cacheStatus: CACHE_STATUS.collapsed, age: undefined }
      })
    }
    let release!: (entry: Entry | undefined) => void
    this.#inflight.set(entryKey, new Promise<Entry | undefined>((resolve) => (release = resolve)))
    return { kind: 'miss', route, entryKey, storable: true, done: false, followers: release }
  }

  /** Takes the handler's response: shares it with waiting requests and stores it when allowed. */
  async finish(miss: Miss, status: number, headers: HeaderBag, body: unknown): Promise<Finish> {
    if (miss.done) return { cacheStatus: CACHE_STATUS.miss, etag: undefined }
    miss.done = true
    const { route } = miss
    let entry: Entry | undefined
    if (miss.storable && unshareableReason(route, status, headers, body) === undefined) {
      const bytes = body === null || body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body as string)
      entry = makeEntry(status, storableHeaders(headers), bytes, Date.now(), route.ttlMs)
    }
    this.#release(miss, entry)
    if (entry === undefined || entry.body.length > route.maxEntryBytes) return { cacheStatus: CACHE_STATUS.miss, etag: undefined }
    try {
      // Kept past its ttl for the stale window; freshness is judged from the entry's own ttl.
      await this.gens.write(miss.entryKey, encodeEntry(entry), route.ttlMs + route.staleMs)
    } catch (err) {
      this.gens.stats.errors++
      this.gens.logger.warn({ err, route: route.name }, 'groupcache: storing a response failed; served uncached')
      return { cacheStatus: CACHE_STATUS.miss, etag: undefined }
    }
    return { cacheStatus: CACHE_STATUS.stored, etag: entry.etag }
  }

  /** The response will never reach finish() (aborted, hijacked): let waiting requests run their handlers. */
  abandon(miss: Miss): void {
    if (miss.done) return
    miss.done = true
    this.#release(miss, undefined)
  }

  #release(miss: Miss, entry: Entry | undefined): void {
    if (miss.followers === undefined) return
    this.#inflight.delete(miss.entryKey)
    miss.followers(entry)
  }

  /** Version keys of a route's declarative bumps for a request's params. */
  declaredBumps(route: CompiledRoute, given: GroupValues, raw: unknown): string[] {
    const params = withAbsentParams(route, given)
    return route.bumps.map((group) => this.gens.versionKey(group, params, raw))
  }

  /** Version key of one bump recorded by a handler (`reply.bumpGroup`); TypeError on a missing value. */
  bumpKey(def: GroupDef, values: GroupValues, raw: unknown): string {
    return this.gens.versionKey(this.gens.compile(def), values, raw)
  }

  /**
   * `bumpRoute(pattern)` moves the route generation on (every entry of the
   * route); `bumpRoute(pattern, params)` moves one view group.
   */
  async bumpRoute(pattern: string, params?: GroupValues): Promise<boolean> {
    if (typeof pattern !== 'string' || pattern === '') {
      throw new GroupcacheTypeError('GC_INVALID_VALUE', `bumpRoute: the URL pattern must be a non-empty string, got ${JSON.stringify(pattern)}`)
    }
    if (params === undefined) return this.gens.bumpKeys([routeKeyFor(this.gens, pattern)])
    return this.gens.bumpKeys([this.#viewGroupKey(pattern, params)])
  }

  /** The view group `{ ...params, route: pattern }` of a route that declares no groups. */
  #viewGroupKey(pattern: string, params: GroupValues): string {
    const mapping: Record<string, string> = {}
    for (const name of Object.keys(params)) mapping[name] = valueToString(params[name], `view group of ${pattern}`, name)
    mapping.route = pattern
    return versionKeyFromEncoded(this.gens.prefix, encodeMapping(mapping))
  }

  #bypass(detail: BypassDetail): { kind: 'bypass'; cacheStatus: string } {
    this.gens.stats.bypasses++
    return BYPASS[detail]
  }

  #storeFault(err: unknown, route: CompiledRoute): BypassDetail {
    if (err instanceof PendingBumpError) return 'pending-bump'
    this.gens.stats.errors++
    this.gens.logger.error({ err, route: route.name }, 'groupcache: store lookup failed; served uncached')
    return err instanceof GroupcacheError && err.code === 'GC_STORE_TIMEOUT' ? 'store-timeout' : 'store-error'
  }
}

/** An optional param that is absent (`/list/:page?`, `/list{/:page}`) counts as the empty string. */
function withAbsentParams(route: CompiledRoute, params: GroupValues): GroupValues {
  for (const name of route.params) {
    if (params[name] === undefined) {
      const filled: Record<string, unknown> = { ...params }
      for (const p of route.params) filled[p] ??= ''
      return filled
    }
  }
  return params
}
