import type { IncomingHttpHeaders } from 'node:http'
import { GroupcacheTypeError } from '../errors.js'
import { encodeMapping, valueToString } from '../core/encoding.js'
import { lookupFaultDetail, type Generations, type Logger } from '../core/generations.js'
import type { Lease, LookupResult, SingleFlight } from '../store/store.js'
import type { GenerationalCache } from '../core/generational-cache.js'
import { groupName, type GroupDef, type GroupValues } from '../core/groups.js'
import { answerLookup, failLookup, lookupChannel, publishNotStored, publishStored, startLookup, suspendLookup, type LookupContext } from '../observability/channels.js'
import { countReason, RouteStats, storeKind } from '../observability/stats.js'
import { versionKeyFromEncoded } from '../core/keys.js'
import { ageValue, CACHE_STATUS, type BypassDetail } from './cache-status.js'
import { EntryDecoder, encodeEntry, makeEntry, storableHeaders, type Entry, type HeaderBag, type StoredHeaders } from './entry.js'
import { headerTokens, ifNoneMatchMatches, notStoredReason, unkeyedVary, type NotStoredReason } from './policy.js'
import { requestKey } from './request-key.js'
import type { Edge } from '../cdn/edge.js'
import type { HeaderPair } from '../cdn/headers.js'
import { compileRoute, LEARNED_VARY_MAX, routeGroupName, routeKeyFor, type CompiledRoute, type RouteDefaults, type RouteInfo } from './route.js'

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
  /**
   * The host as the framework resolved it for the handler (Fastify `request.host`,
   * Express `req.host`: trustProxy and HTTP/2 `:authority` honoured). Lower-cased
   * here. Without it, the Host header.
   */
  readonly host?: string | undefined
  /**
   * The query as the framework parsed it for the handler (`request.query`,
   * `req.query`), canonicalized into the key. Without it, the raw query string
   * of `url` is normalized.
   */
  readonly query?: unknown
  /** The request's logger (Fastify `request.log`), for faults met on this request. */
  readonly log?: Logger | undefined
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
  /** The request headers the key included (declared and learned Vary names). */
  readonly keyed: readonly string[]
  done: boolean
  /** Wakes the requests waiting on this miss (GET leaders only). */
  readonly followers: ((outcome: FlightOutcome) => void) | undefined
  /** What identical requests wait on (GET leaders only). */
  readonly flight?: Flight | undefined
  readonly log: Logger | undefined
  /** The fleet-wide lease this miss holds (store single flight), released once its entry is stored or not. */
  readonly lease?: Lease | undefined
  /** The entry the lookup found expired: it answers a failed handler within `staleIfError`. */
  readonly expired: Entry | undefined
  /** Reads the previous generation's entry after a soft bump (once per flight; none for HEAD). */
  readonly grace: () => Promise<GraceEntry | undefined>
  /** The handler's time limit (staleIfErrorTimeout) while it runs. */
  timer?: NodeJS.Timeout | undefined
  /**
   * A stale entry answered in the handler's place when its time limit passed:
   * the handler may still be running, and what it answers is dropped.
   */
  timedOut?: boolean
  /** The handler began answering: its time limit no longer applies. */
  answering?: boolean
}

/** The previous generation's entry, during a soft bump's grace. */
export interface GraceEntry {
  readonly entry: Entry
  /** Epoch ms of the soft bump: the entry is stale since then. */
  readonly bumpedAt: number
  /** Epoch ms when the grace ends. */
  readonly until: number
}

/** A miss whose handler is running (GET only): identical requests wait for it, or take the soft-bump entry. */
export interface Flight {
  readonly done: Promise<FlightOutcome>
  readonly grace: () => Promise<GraceEntry | undefined>
  /**
   * Set when the handler's time limit passed: identical requests get this
   * stale entry at once (until its window ends) instead of waiting for the
   * handler, which still runs.
   */
  stale: StaleSource | undefined
}

/** An entry that may answer in a handler's place, and since when it is stale. */
interface StaleSource {
  readonly entry: Entry
  /** Epoch ms since when it is stale (its expiry, or the soft bump). */
  readonly staleSince: number
  /** Epoch ms when it may no longer answer. */
  readonly until: number
}

/** A flight's handler timed out and a stale entry answered: waiting requests take `flight.stale`. */
export const STALE: unique symbol = Symbol('groupcache.stale')
/** How a flight ended for the requests waiting on it: its stored entry, nothing to share, or a stale answer. */
export type FlightOutcome = Entry | undefined | typeof STALE

export type Begin = ReadyResponse | Miss | { readonly kind: 'bypass'; readonly cacheStatus: string }

/** Bytes of Redis entry copies one HttpCache keeps decoded (see EntryDecoder). */
const DECODED_MAX_BYTES = 8 * 1024 * 1024
const TIMED_OUT = Symbol('timed out')
// A HEAD miss is never answered stale (its body is not the GET body), so this is never called.
/* c8 ignore next */
const NO_GRACE = (): Promise<undefined> => Promise.resolve(undefined)

/** Run-time settings of the shared layer (adapter options, checked). */
export interface HttpCacheSettings {
  /** Longest a request waits for an identical request's handler, in ms. */
  readonly coalesceTimeoutMs: number
  /** What the cache tells a CDN in front (options cdn, purgers, awaitPurges); undefined when none is set. */
  readonly edge?: Edge | undefined
  /** Per-route counters (option maxRouteStats). @default a table of 1000 routes */
  readonly routeStats?: RouteStats
}

const NO_HEADERS: readonly HeaderPair[] = []

/** Calls `then` with the value now, or when the promise settles: keeps synchronous answers synchronous. */
export function whenReady<T>(value: T | Promise<T>, then: (value: T) => void): void {
  if (value instanceof Promise) void value.then(then)
  else then(value)
}

export interface Finish {
  readonly cacheStatus: string
  /** Set on the response when it was stored, so clients can revalidate against later hits. */
  readonly etag: string | undefined
  /**
   * stale-if-error: the handler failed (5xx) and this stale entry answers
   * instead. The adapter writes it in place of the handler's response.
   */
  readonly stale?: ReadyResponse
}

/**
 * Applies the bumps a response recorded (`bumpGroup`, declared `bumps`),
 * in aligned lists: hard bumps in one store call, soft ones (grace > 0, in
 * seconds) in one call per grace. Never rejects for a store fault; resolves
 * true when every bump landed now.
 */
export async function applyRecordedBumps(gens: Generations, keys: readonly string[], names: readonly string[], graces: readonly number[]): Promise<boolean> {
  if (!graces.some((grace) => grace > 0)) return gens.bumpKeys(keys, names)
  const byGrace = new Map<number, { keys: string[]; names: string[] }>()
  keys.forEach((key, i) => {
    const grace = graces[i] as number
    let batch = byGrace.get(grace)
    if (batch === undefined) byGrace.set(grace, (batch = { keys: [], names: [] }))
    batch.keys.push(key)
    batch.names.push(names[i] as string)
  })
  const landed = await Promise.all([...byGrace].map(([grace, batch]) => gens.bumpKeys(batch.keys, batch.names, grace > 0 ? { grace } : undefined)))
  return landed.every(Boolean)
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
  /** Misses in flight by entry key (GET only), for coalescing; an entry leaves when its miss finishes or is abandoned. */
  readonly #inflight = new Map<string, Flight>()
  readonly #decoder = new EntryDecoder(DECODED_MAX_BYTES)
  readonly #coalesceTimeoutMs: number
  readonly edge: Edge | undefined
  /** Per-route counters for stats(), bounded by route count. */
  readonly routeStats: RouteStats
  readonly #storeKind: string
  /**
   * The cached routes compiled so far, by pattern: their params, whether one
   * of them depends on its view group (no groups declared), and the groups
   * the others declare. What bumpRoute() accepts.
   */
  readonly #routes = new Map<string, { params: Set<string>; viewGroup: boolean; groups: string[] }>()
  /** Set by {@link patternsLearnedLate}: an unknown pattern may be a route not requested yet. */
  #patternsLate = false

  constructor(
    readonly gens: GenerationalCache,
    readonly defaults: RouteDefaults,
    settings: HttpCacheSettings = { coalesceTimeoutMs: 10_000 }
  ) {
    this.#coalesceTimeoutMs = settings.coalesceTimeoutMs
    this.edge = settings.edge
    this.routeStats = settings.routeStats ?? new RouteStats()
    this.#storeKind = storeKind(gens.store)
  }

  /**
   * Checks and precomputes a route's cache options; `counted: false` for a
   * check only (no row in stats(), and not a route bumpRoute() knows).
   */
  compile(route: RouteInfo, config: unknown, counted = true): CompiledRoute {
    const compiled = compileRoute(this.gens, this.defaults, route, config, counted ? this.routeStats : undefined)
    if (compiled.cached && compiled.cdn) this.edge?.checkRoute(compiled.groups.length, compiled.name)
    if (compiled.cached && counted) this.#learnRoute(compiled)
    return compiled
  }

  /** Remembers a cached route's pattern and params for bumpRoute()'s checks (one pattern may serve several methods). */
  #learnRoute(route: CompiledRoute): void {
    let known = this.#routes.get(route.pattern)
    if (known === undefined) this.#routes.set(route.pattern, (known = { params: new Set(), viewGroup: false, groups: [] }))
    for (const name of route.params) known.params.add(name)
    for (const { group } of route.groups) if (!known.groups.includes(group.label)) known.groups.push(group.label)
    known.viewGroup ||= route.viewGroup
  }

  /**
   * Some cached routes make their pattern known only at their first request
   * (Express `gc.route()`: Express tells a middleware its route no sooner):
   * from now on bumpRoute() accepts a pattern it does not know yet.
   */
  patternsLearnedLate(): void {
    this.#patternsLate = true
  }

  /**
   * CDN headers for a GET or HEAD response of a cached route (README "Behind a CDN"):
   * the names of its groups and of its route generation (which
   * `bumpRoute(pattern)` purges), and its edge ttl when this cache `kept` it
   * (a hit, a stored miss). Never part of a stored entry: set on every
   * response, so a change of the cdn option never serves old tags. Empty
   * when the cdn option or the route's is off.
   */
  edgeHeaders(route: CompiledRoute, req: Pick<HttpRequest, 'method' | 'params' | 'raw'>, kept: boolean, cacheControl: unknown): readonly HeaderPair[] {
    const edge = this.edge
    if (edge?.config === undefined || !route.cdn || (req.method !== 'GET' && req.method !== 'HEAD')) return NO_HEADERS
    let names: string[] | undefined
    try {
      names = this.groupNames(route, req.params, req.raw)
      // Every response of the route depends on its route generation too: bumpRoute(pattern) purges it.
      names.push(route.routeGroup)
    } catch {
      // Logged by begin(), which bypassed the cache for it.
      names = undefined
    }
    const control = cacheControl === undefined ? undefined : Array.isArray(cacheControl) ? cacheControl.join(', ') : String(cacheControl)
    return edge.responseHeaders(names, route.ttlMs / 1000, kept, control)
  }

  /** Closes the cache (its last pending bumps are tried), then the CDN purgers (which send the purges those bumps queued). */
  async close(): Promise<void> {
    try {
      await this.gens.close()
    } finally {
      await this.edge?.close()
    }
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
    // Nobody subscribed: one boolean check, nothing allocated.
    const trace = lookupChannel.hasSubscribers ? this.#trace(route, req) : undefined
    if (req.method !== 'GET' && req.method !== 'HEAD') return this.#bypass('method', route, trace)
    if (!route.authorization && req.headers.authorization !== undefined) return this.#bypass('authorization', route, trace)
    let keys: readonly string[]
    try {
      keys = this.versionKeys(route, req.params, req.raw)
    } catch (err) {
      // A function group threw or a value was bad: the route's fault, not the store's.
      this.gens.logger.warn({ err, route: route.name }, 'groupcache: a group could not be resolved for this request; served uncached')
      return this.#bypass('group-error', route, trace)
    }
    // Snapshot: a header learned while this request is in flight must not change what its key included.
    const keyed = route.learnedVary.length === 0 ? route.vary : [...route.vary, ...route.learnedVary]
    let found: LookupResult | Promise<LookupResult>
    try {
      found = this.gens.lookupWithEpoch(keys, requestKey(route, req))
    } catch (err) {
      return this.#bypass(this.#storeFault(err, route, req.log, trace), route, trace)
    }
    if (found instanceof Promise) {
      suspendLookup(trace)
      return found.then(
        (result) => this.#answer(route, req, result, keyed, trace),
        (err: unknown) => this.#bypass(this.#storeFault(err, route, req.log, trace), route, trace)
      )
    }
    return this.#answer(route, req, found, keyed, trace)
  }

  /** Starts the lookup trace (only when someone subscribes). */
  #trace(route: CompiledRoute, req: HttpRequest): LookupContext {
    return startLookup(this.gens.prefix, this.#storeKind, route.name, req.method, req.url, this.#groupNames(route, req))
  }

  /** Readable names of the groups a request's entry depends on; none when one cannot be resolved (the lookup then bypasses). */
  #groupNames(route: CompiledRoute, req: HttpRequest): string[] {
    try {
      return this.groupNames(route, req.params, req.raw)
    } catch {
      return []
    }
  }

  #answer(route: CompiledRoute, req: HttpRequest, found: LookupResult, keyed: readonly string[], trace: LookupContext | undefined): Begin | Promise<Begin> {
    const stats = this.gens.stats
    const entry = found.entry === undefined ? undefined : this.#decoder.decode(found.entry, this.gens.store.local === true ? undefined : found.entryKey)
    if (entry !== undefined) {
      const now = Date.now()
      const expires = entry.storedAt + entry.ttlMs
      // Fresh; or stale within the window while an identical request revalidates.
      if (expires > now || (now < expires + route.staleMs && this.#inflight.has(found.entryKey))) {
        stats.hits++
        const fresh = expires > now
        route.counts[fresh ? 'hits' : 'stale']++
        // A stale entry's ttl is negative even under a second past expiry (-0.4 s says -1, never 0).
        const remaining = Math.trunc((expires - now) / 1000)
        const cacheStatus = CACHE_STATUS.hit(expires > now ? remaining : Math.min(-1, remaining))
        const age = ageValue(Math.max(0, Math.floor((now - entry.storedAt) / 1000)))
        answerLookup(trace, fresh ? 'hit' : 'stale', cacheStatus)
        // Preconditions apply to 2xx responses only (RFC 9110 §13.2.1).
        if (entry.status >= 200 && entry.status < 300 && ifNoneMatchMatches(req.headers['if-none-match'], entry.etag)) {
          return { kind: 'serve', status: 304, headers: entry.notModifiedHeaders, body: undefined, cacheStatus, age }
        }
        return { kind: 'serve', status: entry.status, headers: entry.headers, body: entry.body, cacheStatus, age }
      }
    }
    stats.misses++
    const { entryKey } = found
    const log = req.log
    if (req.method === 'HEAD') {
      this.#missed(route, trace)
      return { kind: 'miss', route, entryKey, storable: false, keyed, done: false, followers: undefined, log, expired: undefined, grace: NO_GRACE }
    }
    let leading = this.#inflight.get(entryKey)
    if (leading?.stale !== undefined) {
      // Its handler overran its time limit and still runs: its stale entry answers at once, while its window lasts;
      // after it, this request leads a new flight, whatever the slow handler does.
      if (leading.stale.until > Date.now()) return this.#timedOutAnswer(leading.stale, route, trace)
      this.#inflight.delete(entryKey)
      leading = undefined
    }
    if (leading !== undefined) {
      const flight = leading
      suspendLookup(trace)
      // During a soft bump's grace, the previous generation answers at once instead of waiting for the recompute.
      return flight.grace().then((soft): Begin | Promise<Begin> => {
        const now = Date.now()
        if (soft !== undefined && soft.until > now) return this.#softAnswer(soft, route, trace, now)
        return this.#follow(flight.done).then((shared): Begin => {
          // Woken the moment the leader's time limit passed, with a stale entry still in its window.
          if (shared === STALE) return this.#timedOutAnswer(flight.stale as StaleSource, route, trace)
          if (shared === undefined || shared === TIMED_OUT) {
            this.#missed(route, trace)
            return { kind: 'miss', route, entryKey, storable: true, keyed, done: false, followers: undefined, log, expired: entry, grace: flight.grace }
          }
          stats.collapsed++
          route.counts.collapsed++
          answerLookup(trace, 'collapsed', CACHE_STATUS.collapsed)
          return { kind: 'serve', status: shared.status, headers: shared.headers, body: shared.body, cacheStatus: CACHE_STATUS.collapsed, age: undefined }
        })
      })
    }
    let release!: (outcome: FlightOutcome) => void
    const done = new Promise<FlightOutcome>((resolve) => (release = resolve))
    const grace = this.#graceReader(route, req, found.versions)
    const flight: Flight = { done, grace, stale: undefined }
    this.#inflight.set(entryKey, flight)
    // A failed handler may need the soft-bump entry: read it while the handler runs.
    if (route.staleIfErrorMs > 0 && entry === undefined) void grace()
    const miss: Miss = { kind: 'miss', route, entryKey, storable: true, keyed, done: false, followers: release, flight, log, expired: entry, grace }
    const fleet = this.gens.store.singleFlight
    if (fleet !== undefined) return this.#leadFleet(fleet, found.entry === undefined, route, req, trace, miss)
    this.#missed(route, trace)
    return miss
  }

  /** The previous generation's entry answers a request during a soft bump's grace (it was counted as a miss). */
  #softAnswer(soft: GraceEntry, route: CompiledRoute, trace: LookupContext | undefined, now: number): ReadyResponse {
    this.#countStale(route)
    const cacheStatus = CACHE_STATUS.softBump(staleSeconds(soft.bumpedAt, now))
    answerLookup(trace, 'stale', cacheStatus, 'soft-bump')
    return { kind: 'serve', status: soft.entry.status, headers: soft.entry.headers, body: soft.entry.body, cacheStatus, age: ageOf(soft.entry, now) }
  }

  /** The stale entry of a flight whose handler overran its time limit (the request was counted as a miss). */
  #timedOutAnswer(source: StaleSource, route: CompiledRoute, trace: LookupContext | undefined): ReadyResponse {
    this.#countStale(route)
    const answer = staleTimeoutAnswer(source, Date.now())
    answerLookup(trace, 'stale', answer.cacheStatus, 'handler-timeout')
    return answer
  }

  /**
   * A miss whose handler ran is answered with a stale entry instead
   * (stale-if-error, handler-timeout): counted as stale, not as a miss. Its
   * lookup trace already said `miss` when the handler started, so the store
   * channel says what became of it (`stored: false`, the reason).
   */
  #missAnsweredStale(route: CompiledRoute, reason: 'stale-if-error' | 'handler-timeout'): void {
    this.#countStale(route)
    route.counts.misses--
    this.#countNotStored(route, reason)
  }

  /** A request counted as a miss is answered stale after all. */
  #countStale(route: CompiledRoute): void {
    const stats = this.gens.stats
    stats.misses--
    stats.hits++
    route.counts.stale++
  }

  /**
   * Reads the soft-bump entry of a flight at most once, on first need (miss
   * path only: the keys are computed again here rather than kept on every
   * request); a store fault reads as none (fail open).
   */
  #graceReader(route: CompiledRoute, req: HttpRequest, versions: readonly string[]): () => Promise<GraceEntry | undefined> {
    let read: Promise<GraceEntry | undefined> | undefined
    const readNow = async (): Promise<GraceEntry | undefined> => {
      try {
        const found = await this.gens.lookupGrace(this.versionKeys(route, req.params, req.raw), versions, requestKey(route, req))
        if (found?.entry === undefined) return undefined
        const entry = this.#decoder.decode(found.entry, this.gens.store.local === true ? undefined : found.entryKey)
        // An entry already expired when the soft bump came would have been recomputed anyway.
        if (entry === undefined || entry.storedAt + entry.ttlMs <= found.bumpedAt) return undefined
        return { entry, bumpedAt: found.bumpedAt, until: found.until }
      } catch (err) {
        this.gens.reportFault(err, { what: 'grace', route: route.name, log: req.log })
        return undefined
      }
    }
    return () => (read ??= readNow())
  }

  /** stale-if-error: the entry that answers a failed handler, if one is within its window. */
  async #staleIfError(miss: Miss, status: number): Promise<ReadyResponse | undefined> {
    const now = Date.now()
    const source = await this.#staleSource(miss, now)
    if (source === undefined) return undefined
    const { entry } = source
    return { kind: 'serve', status: entry.status, headers: entry.headers, body: entry.body, cacheStatus: CACHE_STATUS.staleIfError(status, staleSeconds(source.staleSince, now)), age: ageOf(entry, now) }
  }

  /**
   * The stale entry that may answer in a miss's handler's place: the entry
   * its lookup found expired less than `staleIfError` ago, or else the
   * previous generation's entry within a soft bump's grace.
   */
  async #staleSource(miss: Miss, now: number): Promise<StaleSource | undefined> {
    const expired = this.#expiredSource(miss, now)
    if (expired !== undefined) return expired
    const soft = await miss.grace()
    if (soft === undefined || soft.until <= Date.now()) return undefined
    return { entry: soft.entry, staleSince: soft.bumpedAt, until: soft.until }
  }

  /** The entry a miss's lookup found expired, while it is within the route's `staleIfError` window. */
  #expiredSource(miss: Miss, now: number): StaleSource | undefined {
    const { expired, route } = miss
    if (expired === undefined) return undefined
    const staleSince = expired.storedAt + expired.ttlMs
    const until = staleSince + route.staleIfErrorMs
    return now < until ? { entry: expired, staleSince, until } : undefined
  }

  /**
   * Starts a miss's time limit (`staleIfErrorTimeout`) as its handler starts.
   * When it passes before the handler began answering ({@link answering}) and
   * a stale entry could answer, `answer` writes that entry in place of the
   * handler's response, and the requests waiting on this miss get it too.
   * The handler runs on; the adapter calls {@link late} when it answers.
   * With no stale entry, nothing happens: the handler runs as long as it
   * takes. The timer is cleared when the handler answers first; it is not
   * unref'd, since a request is waiting on it (with inject, nothing else may
   * keep the process alive).
   */
  limit(miss: Miss, answer: (stale: ReadyResponse) => void): void {
    const ms = miss.route.staleIfErrorTimeoutMs
    // HEAD is never answered stale (its body is not the GET body).
    if (ms === 0 || !miss.storable || miss.done) return
    miss.timer = setTimeout(() => void this.#timeUp(miss, answer), ms)
  }

  async #timeUp(miss: Miss, answer: (stale: ReadyResponse) => void): Promise<void> {
    miss.timer = undefined
    const now = Date.now()
    const source = await this.#staleSource(miss, now)
    // Nothing may answer in its place; or the handler began answering while the soft-bump entry was read.
    if (source === undefined || miss.done || miss.answering === true) return
    answer(staleTimeoutAnswer(source, now))
    miss.done = true
    miss.timedOut = true
    const { route, flight } = miss
    // Whatever the handler answers now is dropped, never stored.
    this.#missAnsweredStale(route, 'handler-timeout')
    if (flight === undefined) return
    // Identical requests, waiting or still to come, take the stale entry rather than wait for the handler; the flight
    // (and its fleet lease) stays until the handler answers (late()), or until the stale window ends if it never does.
    flight.stale = source
    ;(miss.followers as (outcome: FlightOutcome) => void)(STALE)
    // Nobody waits on this one, and it may last the whole stale window: it never holds the process.
    const cleanup = setTimeout(() => this.late(miss), source.until - now)
    cleanup.unref()
    miss.timer = cleanup
  }

  /**
   * The handler began answering (an adapter whose store decision waits on
   * asynchronous work, such as bumps): its time limit no longer applies.
   */
  answering(miss: Miss): void {
    miss.answering = true
    clearTimeout(miss.timer)
  }

  /**
   * The handler of a miss answered after a stale entry had answered in its
   * place (or its stale window ended): what it answered was dropped. Identical
   * requests run the handler again from now on, and the fleet lease is released.
   */
  late(miss: Miss): void {
    if (miss.timedOut !== true) return
    miss.timedOut = false
    clearTimeout(miss.timer)
    if (this.#inflight.get(miss.entryKey) === miss.flight) this.#inflight.delete(miss.entryKey)
    void miss.lease?.release()
  }

  /**
   * Fleet-wide single flight (README "Fleet-wide single flight"): this process's leader for a cold
   * miss asks the store which process runs the handler. Holding the lease, it
   * runs it (the lease is released after the write); woken by the holder's
   * release, it re-reads the entry and serves it, with this process's
   * followers, as collapsed; otherwise (wait given up, entry not stored, a
   * store fault) it runs its own handler, as without single flight.
   *
   * While another process holds the lease, a stale entry may answer instead
   * of the wait: the previous generation during a soft bump's grace at once
   * (no request waits for the recompute), an entry within `staleIfError` once
   * `staleIfErrorTimeout` has passed. The flight then keeps waiting in the
   * background, so that this process's identical requests take that stale
   * entry too, until the holder's entry can be read.
   */
  #leadFleet(fleet: SingleFlight, cold: boolean, route: CompiledRoute, req: HttpRequest, trace: LookupContext | undefined, miss: Miss): Promise<Begin> {
    suspendLookup(trace)
    return new Promise<Begin>((resolve) => {
      let answered = false
      let timer: NodeJS.Timeout | undefined
      const answer = (begin: Begin): void => {
        answered = true
        clearTimeout(timer)
        resolve(begin)
      }
      // Only once another process holds the lease: the lease holder pays nothing for it.
      const held = (): void => {
        void miss.grace().then((soft) => {
          // The wait ended (the holder released) while the grace record was read: that answer stands.
          /* c8 ignore next */
          if (answered) return
          const now = Date.now()
          if (soft !== undefined && soft.until > now) {
            answer(this.#softAnswer(soft, route, trace, now))
            return
          }
          const limitMs = route.staleIfErrorTimeoutMs
          const source = this.#expiredSource(miss, now)
          // Without a stale entry that still applies when the limit passes, the wait goes on as it would.
          if (source === undefined || limitMs === 0 || source.until <= now + limitMs) return
          timer = setTimeout(() => {
            // Cleared when the wait ended first: this request is still waiting.
            answer(this.#timedOutAnswer(source, route, trace))
            ;(miss.flight as Flight).stale = source
            ;(miss.followers as (outcome: FlightOutcome) => void)(STALE)
          }, limitMs)
        })
      }
      void this.#askFleet(fleet, cold, route, req, miss, held).then((outcome) => {
        if (!answered) {
          answer(this.#fleetAnswer(outcome, route, trace, miss))
          return
        }
        // Answered stale already: nobody here runs the handler. The flight ends with what the holder stored.
        miss.done = true
        let shared: Entry | undefined
        if (outcome !== 'timeout') {
          if ('entry' in outcome) shared = outcome.entry
          // Taken over from a holder that went away: the next request here leads again.
          else void outcome.release()
        }
        this.#release(miss, shared)
      })
    })
  }

  /** Asks for the fleet lease (a store fault counts as a wait given up), and re-reads the holder's entry once released. */
  async #askFleet(fleet: SingleFlight, cold: boolean, route: CompiledRoute, req: HttpRequest, miss: Miss, held: () => void): Promise<Lease | { entry: Entry | undefined } | 'timeout'> {
    let outcome: Lease | 'released' | 'timeout'
    try {
      outcome = await fleet.lead(miss.entryKey, cold, held)
    } catch (err) {
      this.gens.reportFault(err, { what: 'single-flight', route: route.name, log: miss.log })
      return 'timeout'
    }
    return outcome === 'released' ? { entry: await this.#reread(route, req, miss) } : outcome
  }

  /** What the fleet's answer means for this request: run the handler (holding the lease or not), or serve the holder's entry. */
  #fleetAnswer(outcome: Lease | { entry: Entry | undefined } | 'timeout', route: CompiledRoute, trace: LookupContext | undefined, miss: Miss): Begin {
    if (outcome === 'timeout' || !('entry' in outcome)) {
      this.#missed(route, trace)
      return outcome === 'timeout' ? miss : { ...miss, lease: outcome }
    }
    const { entry } = outcome
    if (entry === undefined) {
      this.#missed(route, trace)
      return miss
    }
    miss.done = true
    this.#release(miss, entry)
    this.gens.stats.collapsed++
    route.counts.collapsed++
    answerLookup(trace, 'collapsed', CACHE_STATUS.collapsed)
    return { kind: 'serve', status: entry.status, headers: entry.headers, body: entry.body, cacheStatus: CACHE_STATUS.collapsed, age: undefined }
  }

  /** The fresh entry another process stored for this miss's key (a bump since then moved the key: none). */
  async #reread(route: CompiledRoute, req: HttpRequest, miss: Miss): Promise<Entry | undefined> {
    try {
      const found = await this.gens.lookupWithEpoch(this.versionKeys(route, req.params, req.raw), requestKey(route, req))
      if (found.entryKey !== miss.entryKey || found.entry === undefined) return undefined
      const entry = this.#decoder.decode(found.entry, found.entryKey)
      // Unreadable, or a stale entry the holder did not replace (its response was not stored).
      return entry !== undefined && entry.storedAt + entry.ttlMs > Date.now() ? entry : undefined
    } catch (err) {
      this.#storeFault(err, route, miss.log, undefined)
      return undefined
    }
  }

  /** The handler will run: counted, and the trace answered. */
  #missed(route: CompiledRoute, trace: LookupContext | undefined): void {
    route.counts.misses++
    answerLookup(trace, 'miss')
  }

  /** Waits for a leader's entry at most coalesceTimeout: a hung handler never holds later requests for longer. */
  #follow(leading: Promise<FlightOutcome>): Promise<FlightOutcome | typeof TIMED_OUT> {
    return new Promise((resolve) => {
      // Not unref'd: a request is waiting on it; it is cleared as soon as the leader answers.
      const timer = setTimeout(resolve, this.#coalesceTimeoutMs, TIMED_OUT)
      void leading.then((entry) => {
        clearTimeout(timer)
        resolve(entry)
      })
    })
  }

  /**
   * Takes the handler's response: shares it with waiting requests and stores
   * it when allowed. `headers` are the headers actually written (what every
   * hook added included); `before` those already on the response when the
   * handler started (CORS, rate-limit, security headers): they are recomputed
   * on every hit, so they are not stored unless the handler changed them, and
   * their Vary tokens split nothing.
   */
  async finish(miss: Miss, status: number, headers: HeaderBag, body: unknown, before?: HeaderBag): Promise<Finish> {
    if (miss.done) return { cacheStatus: CACHE_STATUS.miss, etag: undefined }
    miss.done = true
    clearTimeout(miss.timer)
    const { route } = miss
    if (status >= 500 && route.staleIfErrorMs > 0 && miss.storable && (body === undefined || typeof body === 'string' || Buffer.isBuffer(body))) {
      const stale = await this.#staleIfError(miss, status)
      if (stale !== undefined) {
        this.#release(miss, undefined)
        void miss.lease?.release()
        this.#missAnsweredStale(route, 'stale-if-error')
        return { cacheStatus: stale.cacheStatus, etag: undefined, stale }
      }
    }
    const reason = this.#notStored(miss, status, headers, body, before)
    if (reason !== undefined) {
      this.#release(miss, undefined)
      void miss.lease?.release()
      this.#countNotStored(route, reason)
      return { cacheStatus: CACHE_STATUS.notStored(reason), etag: undefined }
    }
    const bytes = body === null || body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body as string)
    const entry = makeEntry(status, storableHeaders(contentHeaders(headers, before)), bytes, Date.now(), route.ttlMs)
    this.#release(miss, entry)
    const encoded = encodeEntry(entry)
    try {
      // Kept past its ttl for the stale window; freshness is judged from the entry's own ttl.
      await this.gens.write(miss.entryKey, encoded, route.ttlMs + Math.max(route.staleMs, route.staleIfErrorMs))
    } catch (err) {
      this.gens.reportFault(err, { what: 'write', route: route.name, log: miss.log })
      this.#countNotStored(route, 'store-error')
      return { cacheStatus: CACHE_STATUS.notStored('store-error'), etag: undefined }
    } finally {
      // After the write: the processes it wakes re-read the entry.
      void miss.lease?.release()
    }
    route.counts.stored++
    publishStored(this.gens.prefix, route.name, encoded.length, route.ttlMs / 1000)
    return { cacheStatus: CACHE_STATUS.stored, etag: entry.etag }
  }

  #countNotStored(route: CompiledRoute, reason: string): void {
    countReason(route.counts.notStored, reason)
    publishNotStored(this.gens.prefix, route.name, reason)
  }

  #notStored(miss: Miss, status: number, headers: HeaderBag, body: unknown, before: HeaderBag | undefined): NotStoredReason | undefined {
    if (!miss.storable) return 'head'
    const { route } = miss
    const preset = new Set(headerTokens(before?.vary))
    const reason = notStoredReason(route, status, headers, body, miss.keyed, preset)
    if (reason === 'vary') this.#learnVary(route, unkeyedVary(headers, miss.keyed, preset))
    if (reason !== undefined) return reason
    // Checked before the body is hashed or copied.
    const length = body === null || body === undefined ? 0 : Buffer.isBuffer(body) ? body.length : Buffer.byteLength(body as string)
    return length > route.maxEntryBytes ? 'too-big' : undefined
  }

  /** Makes headers a response varied on part of the route's key from now on, up to LEARNED_VARY_MAX. */
  #learnVary(route: CompiledRoute, names: readonly string[]): void {
    for (const name of names) {
      // Names the route keys on were filtered out before; another request may have learned this one since.
      if (route.learnedVary.includes(name)) continue
      if (route.learnedVary.length >= LEARNED_VARY_MAX) {
        this.gens.logger.warn({ route: route.name, vary: name }, `groupcache: route ${route.name} varies on more than ${LEARNED_VARY_MAX} request headers; responses varying on more are not stored`)
        return
      }
      route.learnedVary.push(name)
    }
  }

  /** The response will never reach finish() (aborted, hijacked): let waiting requests run their handlers. */
  abandon(miss: Miss): void {
    if (miss.done) return
    miss.done = true
    clearTimeout(miss.timer)
    this.#release(miss, undefined)
    void miss.lease?.release()
  }

  #release(miss: Miss, entry: FlightOutcome): void {
    if (miss.followers === undefined) return
    // A flight whose stale window ended may have been replaced by a new one for the same key.
    if (this.#inflight.get(miss.entryKey) === miss.flight) this.#inflight.delete(miss.entryKey)
    miss.followers(entry)
  }

  /**
   * Readable names of the groups a request's response depends on (`user:42`,
   * `posts`; the view group as `route=/users/:userId,userId=42`): for CDN
   * headers naming a response's groups. Names, never versions.
   */
  groupNames(route: CompiledRoute, given: GroupValues, raw: unknown): string[] {
    const params = withAbsentParams(route, given)
    if (route.viewGroup) return [groupName(this.#viewGroupEncoded(route.pattern, params))]
    return route.groups.map(({ group }) => this.gens.bumpTarget(group, params, raw).name)
  }

  /** Version keys and readable names of a route's declarative bumps for a request's params. */
  declaredBumpTargets(route: CompiledRoute, given: GroupValues, raw: unknown): { key: string; name: string }[] {
    const params = withAbsentParams(route, given)
    return route.bumps.map((group) => this.gens.bumpTarget(group, params, raw))
  }

  /** Version key and readable name of one bump recorded by a handler; TypeError on a missing value. */
  bumpTarget(def: GroupDef, values: GroupValues, raw: unknown): { key: string; name: string } {
    return this.gens.bumpTarget(this.gens.compile(def), values, raw)
  }

  /**
   * `bumpRoute(pattern)` moves the route generation on (every entry of the
   * route); `bumpRoute(pattern, params)` moves one view group. A pattern no
   * cached route of this cache has, or params its route does not have (or
   * lacks), is a GroupcacheTypeError: such a bump would reach no entry. While
   * some routes make their pattern known only at their first request (Express
   * `gc.route()`), a pattern not known yet is accepted as it is.
   */
  async bumpRoute(pattern: string, params?: GroupValues): Promise<boolean> {
    if (typeof pattern !== 'string' || pattern === '') {
      throw new GroupcacheTypeError('GC_INVALID_VALUE', `bumpRoute: the URL pattern must be a non-empty string, got ${JSON.stringify(pattern)}`)
    }
    this.#checkBumpRoute(pattern, params)
    // Readable names (`route=/users/:userId`) for logs, bump subscribers and CDN purges.
    if (params === undefined) return this.gens.bumpKeys([routeKeyFor(this.gens, pattern)], [routeGroupName(pattern)])
    const encoded = this.#viewGroupEncoded(pattern, params)
    return this.gens.bumpKeys([versionKeyFromEncoded(this.gens.prefix, encoded)], [groupName(encoded)])
  }

  /** A bumpRoute() that would reach no entry is an error naming the pattern or the param at fault. */
  #checkBumpRoute(pattern: string, params: GroupValues | undefined): void {
    const known = this.#routes.get(pattern)
    if (known === undefined) {
      if (this.#patternsLate) return
      throw new GroupcacheTypeError('GC_INVALID_VALUE', `bumpRoute: no cached route of this cache has the pattern ${JSON.stringify(pattern)} (give the pattern as the route declares it, such as '/users/:userId')`)
    }
    if (params === undefined) return
    if (params === null || typeof params !== 'object') {
      throw new GroupcacheTypeError('GC_INVALID_VALUE', `bumpRoute: the params of ${pattern} must be an object, got ${String(params)}`)
    }
    // Only a route without declared groups has view groups: on the others such a bump would reach no entry.
    if (!known.viewGroup) {
      throw new GroupcacheTypeError(
        'GC_INVALID_VALUE',
        `bumpRoute: route ${pattern} declares its groups (${known.groups.join(', ')}), so it has no view group to bump with params: bump one of its groups, or its whole route generation with bumpRoute(${JSON.stringify(pattern)})`
      )
    }
    const has = [...known.params].join(', ') || 'no params'
    const unknown = Object.keys(params).filter((name) => !known.params.has(name))
    if (unknown.length > 0) {
      throw new GroupcacheTypeError('GC_UNKNOWN_PARAM', `bumpRoute: route ${pattern} has no param ${unknown.map((name) => JSON.stringify(name)).join(', ')} (it has: ${has})`)
    }
    // A request's view group names every param (an absent optional one as ''): a bump naming fewer reaches none.
    const missing = [...known.params].filter((name) => params[name] === undefined)
    if (missing.length > 0) {
      throw new GroupcacheTypeError('GC_MISSING_VALUE', `bumpRoute: route ${pattern} has param ${missing.map((name) => JSON.stringify(name)).join(', ')}, missing from the params given (an absent optional param is '')`)
    }
  }

  /** The view group `{ ...params, route: pattern }` of a route that declares no groups. */
  #viewGroupKey(pattern: string, params: GroupValues): string {
    return versionKeyFromEncoded(this.gens.prefix, this.#viewGroupEncoded(pattern, params))
  }

  #viewGroupEncoded(pattern: string, params: GroupValues): string {
    const mapping: Record<string, string> = {}
    for (const name of Object.keys(params)) mapping[name] = valueToString(params[name], `view group of ${pattern}`, name)
    mapping.route = pattern
    return encodeMapping(mapping)
  }

  #bypass(detail: BypassDetail, route: CompiledRoute, trace: LookupContext | undefined): { kind: 'bypass'; cacheStatus: string } {
    this.gens.stats.bypasses++
    countReason(route.counts.bypass, detail)
    const bypass = BYPASS[detail]
    answerLookup(trace, 'bypass', bypass.cacheStatus, detail)
    return bypass
  }

  #storeFault(err: unknown, route: CompiledRoute, log: Logger | undefined, trace: LookupContext | undefined): BypassDetail {
    const detail = lookupFaultDetail(err)
    if (detail === 'pending-bump' || detail === 'store-unavailable') return detail
    failLookup(trace, err)
    this.gens.reportFault(err, { what: 'lookup', route: route.name, log })
    return detail
  }
}

/** A stale entry answering in place of a handler that overran its time limit. */
function staleTimeoutAnswer(source: StaleSource, now: number): ReadyResponse {
  const { entry } = source
  return { kind: 'serve', status: entry.status, headers: entry.headers, body: entry.body, cacheStatus: CACHE_STATUS.staleTimeout(staleSeconds(source.staleSince, now)), age: ageOf(entry, now) }
}

/** A stale response's ttl: negative, and at least a second (-0.4 s says -1, never 0). */
function staleSeconds(staleSince: number, now: number): number {
  return Math.min(-1, Math.trunc((staleSince - now) / 1000))
}

function ageOf(entry: Entry, now: number): string {
  return ageValue(Math.max(0, Math.floor((now - entry.storedAt) / 1000)))
}

/** The headers of a response that are its content: not those already there, unchanged, when the handler started (`before` as getHeaders() gives it: lower-case names). */
function contentHeaders(headers: HeaderBag, before: HeaderBag | undefined): HeaderBag {
  if (before === undefined) return headers
  const out: Record<string, HeaderBag[string]> = {}
  for (const name of Object.keys(headers)) {
    const lower = name.toLowerCase()
    const value = headers[name]
    if (lower === 'vary') {
      // Only the tokens added after the handler started; kept as written.
      const preset = new Set(headerTokens(before.vary))
      const added = (Array.isArray(value) ? value.join(',') : String(value)).split(',').map((token) => token.trim()).filter((token) => token !== '' && !preset.has(token.toLowerCase()))
      if (added.length > 0) out.vary = added.join(', ')
    } else if (!sameHeader(value, before[lower])) {
      out[name] = value
    }
  }
  return out
}

function sameHeader(a: HeaderBag[string], b: HeaderBag[string]): boolean {
  if (a === undefined || b === undefined) return a === b
  return (Array.isArray(a) ? a.join('\n') : String(a)) === (Array.isArray(b) ? b.join('\n') : String(b))
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
