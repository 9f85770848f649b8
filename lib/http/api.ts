import type { GenerationalCache } from '../core/generational-cache.js'
import type { BumpOptions } from '../core/generations.js'
import { buildStats, type GroupcacheStats } from '../observability/stats.js'
import type { GroupDef, GroupValues } from '../core/groups.js'
import type { HttpCache } from './http-cache.js'

/** What both adapters expose: `app.groupcache` in Fastify, the `expressCache()` object in Express. */
export interface CacheApi {
  /**
   * Bumps one group now. Resolves false when the store failed and the bump was
   * kept for retry. `{ grace }` (seconds) makes it a soft bump (README "Soft bumps and stale-if-error").
   */
  bump(def: GroupDef, values?: GroupValues, options?: BumpOptions): Promise<boolean>
  /**
   * Bumps a route's generation (every entry of the route; with the `cdn`
   * option, its responses name it, so the purgers purge them all), or with
   * params one view group of it (a route without declared groups). `urlPattern`
   * is a cached route's pattern as declared (`'/users/:userId'`). Rejects with a
   * GroupcacheTypeError when no cached route has that pattern, or params are
   * given for a route that declares its groups (`GC_INVALID_VALUE`), or params name
   * a param the route does not have (`GC_UNKNOWN_PARAM`) or lack one it has
   * (`GC_MISSING_VALUE`): such a bump would reach no entry. Express
   * `gc.route()` routes are known from their first request; while any is
   * mounted, a pattern not known yet is accepted.
   */
  bumpRoute(urlPattern: string, params?: GroupValues): Promise<boolean>
  /** Orphans every entry at once by moving the epoch on. */
  clear(): Promise<boolean>
  /** Totals, per-route counts and reasons, hit ratios, pending bumps, the breaker's state and the store's size. */
  stats(): GroupcacheStats
  /** The cache underneath, with the function-cache API. */
  readonly cache: GenerationalCache
}

export function cacheApi(http: HttpCache): CacheApi {
  const gens = http.gens
  return {
    cache: gens,
    bump: (def, values, options) => gens.bump(def, values, options),
    bumpRoute: (pattern, params) => http.bumpRoute(pattern, params),
    clear: () => gens.clear(),
    stats: () => buildStats(gens.getStats(), http.routeStats, gens.store)
  }
}
