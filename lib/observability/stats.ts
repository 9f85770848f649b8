import { GroupcacheError } from '../errors.js'
import type { CacheStats } from '../core/generations.js'
import type { Store } from '../store/store.js'

/** Counts of one route. Not-stored reasons and bypass details are keyed by their `Cache-Status` detail. */
export interface RouteCounts {
  /** Fresh entries served. */
  hits: number
  /**
   * Entries served past their ttl: stale-while-revalidate, soft bumps, and
   * in a handler's place (stale-if-error, handler-timeout).
   */
  stale: number
  /** Requests whose handler ran after a lookup and answered (not replaced by a stale entry). */
  misses: number
  /** Requests answered with an identical request's response while its handler ran. */
  collapsed: number
  /** Handler responses written to the store. */
  stored: number
  /**
   * Handler responses not stored, by reason (`status`, `set-cookie`,
   * `too-big`, `store-error`, …; `stale-if-error` and `handler-timeout` when a
   * stale entry answered in its place).
   */
  notStored: Record<string, number>
  /** Requests that skipped the cache, by detail (`method`, `authorization`, `store-timeout`, …). */
  bypass: Record<string, number>
}

/** A route's counts with its hit ratio. */
export interface RouteStatsEntry extends RouteCounts {
  /**
   * Share of this route's lookups served from the store: (hits + stale) /
   * (hits + stale + misses + collapsed). Bypasses are not lookups. Null before
   * the first lookup.
   */
  readonly hitRatio: number | null
}

function idle(counts: RouteCounts): boolean {
  return counts.hits + counts.stale + counts.misses + counts.collapsed === 0 && Object.keys(counts.bypass).length === 0
}

/** Where routes beyond `maxRoutes` are counted together. */
export const OTHER_ROUTES = '(other routes)'

/** Zeroed counters (for a route kept out of the table). */
export function newRouteCounts(): RouteCounts {
  return { hits: 0, stale: 0, misses: 0, collapsed: 0, stored: 0, notStored: {}, bypass: {} }
}

/** Adds one to a reason's count. */
export function countReason(counts: Record<string, number>, reason: string): void {
  counts[reason] = (counts[reason] ?? 0) + 1
}

export function routeHitRatio(counts: RouteCounts): number | null {
  const served = counts.hits + counts.stale
  const lookups = served + counts.misses + counts.collapsed
  return lookups === 0 ? null : served / lookups
}

/**
 * Per-route counters of one cache. A route's counters are one object, fetched
 * once when the route is compiled and incremented in place, so counting costs
 * the hit path no lookup. Bounded: past `maxRoutes` distinct routes (Express
 * routers mounted on param paths make one route per value), the rest are
 * counted together under {@link OTHER_ROUTES}.
 */
export class RouteStats {
  readonly maxRoutes: number
  readonly #routes = new Map<string, RouteCounts>()

  constructor(maxRoutes = 1000) {
    if (!Number.isSafeInteger(maxRoutes) || maxRoutes < 1) {
      throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option maxRouteStats must be a positive integer, got ${String(maxRoutes)}`)
    }
    this.maxRoutes = maxRoutes
  }

  /** The live counters of a route (the same object on every call). */
  counts(route: string): RouteCounts {
    let counts = this.#routes.get(route)
    if (counts !== undefined) return counts
    if (this.#routes.size >= this.maxRoutes) route = OTHER_ROUTES
    counts = this.#routes.get(route) ?? newRouteCounts()
    this.#routes.set(route, counts)
    return counts
  }

  /** A copy of the counts of every route that has seen a request, with hit ratios. */
  snapshot(): Record<string, RouteStatsEntry> {
    const routes: Record<string, RouteStatsEntry> = {}
    for (const [route, counts] of this.#routes) {
      // Routes never requested (Fastify's automatic HEAD routes, most often) would only be noise.
      if (idle(counts)) continue
      routes[route] = { ...counts, notStored: { ...counts.notStored }, bypass: { ...counts.bypass }, hitRatio: routeHitRatio(counts) }
    }
    return routes
  }
}

/** What a store holds, when it can tell (the memory store can; Redis is shared, so it does not). */
export interface StoreSize {
  /** `memory`, `redis`, or a custom store's class name. */
  readonly kind: string
  readonly entries?: number
  readonly bytes?: number
  readonly versions?: number
}

/** Everything `stats()` reports (README "Observability"). */
export interface GroupcacheStats extends CacheStats {
  /** hits / (hits + misses) over every lookup of this cache (HTTP and function cache); null before the first. */
  readonly hitRatio: number | null
  /** Responses not stored, by reason, summed over routes. */
  readonly notStored: Record<string, number>
  /** Bypasses by detail, summed over routes. */
  readonly bypassed: Record<string, number>
  readonly store: StoreSize
  readonly routes: Record<string, RouteStatsEntry>
}

const KNOWN_KINDS: Record<string, string> = { MemoryStore: 'memory', RedisStore: 'redis' }

/** A store's kind for stats and diagnostics: its `name` when it has one, else from its class. */
export function storeKind(store: Store): string {
  const named = (store as { name?: unknown }).name
  if (typeof named === 'string') return named
  const className = store.constructor.name
  return KNOWN_KINDS[className] ?? className
}

function count(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

/** The store's size, read from its `size` property when it has one (MemoryStore's). */
export function storeSize(store: Store): StoreSize {
  const size = (store as { size?: unknown }).size
  const kind = storeKind(store)
  if (typeof size !== 'object' || size === null) return { kind }
  const { entries, bytes, versions } = size as Record<string, unknown>
  return { kind, entries: count(entries), bytes: count(bytes), versions: count(versions) }
}

function sum(into: Record<string, number>, from: Record<string, number>): void {
  for (const [reason, n] of Object.entries(from)) into[reason] = (into[reason] ?? 0) + n
}

/** Builds `stats()` from the engine's totals, the per-route counters and the store. */
export function buildStats(totals: CacheStats, routes: RouteStats, store: Store): GroupcacheStats {
  const perRoute = routes.snapshot()
  const notStored: Record<string, number> = {}
  const bypassed: Record<string, number> = {}
  for (const counts of Object.values(perRoute)) {
    sum(notStored, counts.notStored)
    sum(bypassed, counts.bypass)
  }
  const lookups = totals.hits + totals.misses
  return {
    ...totals,
    hitRatio: lookups === 0 ? null : totals.hits / lookups,
    notStored,
    bypassed,
    store: storeSize(store),
    routes: perRoute
  }
}
