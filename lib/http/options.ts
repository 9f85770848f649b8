import { GroupcacheError } from '../errors.js'
import { GenerationalCache, type GenerationalCacheOptions } from '../core/generational-cache.js'
import { positiveNumber, type Logger } from '../core/generations.js'
import { HttpCache } from './http-cache.js'
import { RouteStats } from '../observability/stats.js'
import { seconds, timerSeconds } from './route.js'
import { Edge } from '../cdn/edge.js'
import type { CdnOptions } from '../cdn/headers.js'
import type { CdnPurger } from '../cdn/purger.js'

/** Options of the Fastify plugin and of `expressCache()`. */
export interface GroupcacheOptions extends GenerationalCacheOptions {
  /**
   * Response statuses stored, unless a route says otherwise.
   * @default [200]
   */
  statuses?: readonly number[]
  /**
   * Largest body stored, in bytes, unless a route says otherwise.
   * @default 1048576 (1 MiB)
   */
  maxEntryBytes?: number
  /**
   * Longest a request waits, in milliseconds, for an identical request's
   * handler to answer it (miss coalescing) before it runs its own handler: one
   * hung handler never captures every later identical request.
   * @default 10000
   */
  coalesceTimeout?: number
  /**
   * Name each response of a cached route's groups for a CDN or reverse proxy
   * in front (README "Behind a CDN"): `true` for RFC 9875
   * `Cache-Groups` only, or {@link CdnOptions} (`headers`, `namespace`,
   * `edgeTtl`, `invalidationHeader`). A mutation's response then names the
   * groups it bumped in `Cache-Group-Invalidation`. A route opts out with its
   * own `cdn: false`.
   * @default false
   */
  cdn?: boolean | CdnOptions
  /**
   * CDN purgers (`fastlyPurger()`, `cloudflarePurger()`, `varnishPurger()`):
   * each is called after every bump landed in the store, and closed with the
   * app. Their `namespace` must be `cdn.namespace`.
   * @default []
   */
  purgers?: readonly CdnPurger[]
  /**
   * A mutation's response waits until the purges of its bumps were sent (or
   * given up after their retries): read-your-writes at the edge, for the time
   * of a CDN API call per mutation. Off, the edge may serve the old copy for
   * the purgers' `windowMs` plus that call.
   * @default false
   */
  awaitPurges?: boolean
  /**
   * Seconds past an entry's `ttl` during which a handler that throws or
   * answers 5xx is answered with the stale entry, unless a route says
   * otherwise (route option `staleIfError`).
   * @default 0
   */
  staleIfError?: number
  /**
   * Seconds (fractions allowed) a handler may take when a stale entry could
   * answer in its place (within `staleIfError`, or a soft bump's grace),
   * unless a route says otherwise (route option `staleIfErrorTimeout`): past
   * it the stale entry answers and the handler's later response is dropped.
   * @default 0 (no time limit)
   */
  staleIfErrorTimeout?: number
  /**
   * Most routes `stats()` counts one by one; requests of routes past it are
   * counted together under `(other routes)`. Express routers mounted on
   * param paths make a route per value, so the table needs a bound.
   * @default 1000
   */
  maxRouteStats?: number
}

const OPTION_NAMES = new Set(['store', 'prefix', 'ttl', 'timeout', 'logger', 'statuses', 'maxEntryBytes', 'coalesceTimeout', 'breaker', 'maxPendingBumps', 'faultLogInterval', 'cdn', 'purgers', 'awaitPurges', 'staleIfError', 'staleIfErrorTimeout', 'maxRouteStats'])
const STORE_METHODS = ['lookup', 'set', 'delete', 'bump', 'close'] as const

/** An object implementing Store, or a GroupcacheError naming option store. */
function checkStore(store: unknown): void {
  if (store === undefined) return
  const missing = store !== null && typeof store === 'object' ? STORE_METHODS.filter((m) => typeof (store as Record<string, unknown>)[m] !== 'function') : STORE_METHODS
  if (missing.length === 0) return
  const got = typeof store === 'string' ? `the string ${JSON.stringify(store)} (for a Redis URL use new RedisStore({ url }))` : store === null ? 'null' : typeof store === 'object' ? `an object without ${missing.join(', ')}` : `a ${typeof store}`
  throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option store must be a Store (MemoryStore, RedisStore or an object with ${STORE_METHODS.join(', ')}), got ${got}`)
}

/** Checks the adapter options and builds the shared HTTP layer on a new cache. */
export function createHttpCache(options: GroupcacheOptions, frameworkLogger: Logger | undefined): HttpCache {
  if (options === null || typeof options !== 'object') {
    throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: options must be an object, got ${String(options)}`)
  }
  for (const name of Object.keys(options)) {
    if (!OPTION_NAMES.has(name)) {
      throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: unknown option "${name}" (known: ${[...OPTION_NAMES].join(', ')})`)
    }
  }
  checkStore(options.store)
  const { statuses = [200], maxEntryBytes = 1024 * 1024, coalesceTimeout = 10_000, staleIfError = 0, staleIfErrorTimeout = 0, maxRouteStats = 1000, logger = frameworkLogger, cdn, purgers, awaitPurges, ...rest } = options
  if (!Array.isArray(statuses) || statuses.some((s) => !Number.isInteger(s) || s < 100 || s > 599)) {
    throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option statuses must be an array of HTTP status codes, got ${JSON.stringify(statuses)}`)
  }
  const checkedMaxEntryBytes = positiveNumber(maxEntryBytes, 'maxEntryBytes', 'groupcache: ')
  const checkedCoalesce = positiveNumber(coalesceTimeout, 'coalesceTimeout', 'groupcache: ')
  const checkedStaleIfError = seconds(staleIfError, 'staleIfError', 'groupcache: ')
  // Checked before the cache starts on its store: a bad option leaves nothing running.
  const checkedStaleTimeout = timerSeconds(staleIfErrorTimeout, 'staleIfErrorTimeout', 'groupcache: ')
  const routeStats = new RouteStats(maxRouteStats)
  const edge = Edge.create({ cdn, purgers, awaitPurges })
  // The function cache (app.groupcache.cache, gc.cache) bounds its coalescing waits as the HTTP layer does.
  const gens = new GenerationalCache({ ...rest, ...(logger === undefined ? {} : { logger }), coalesceTimeout: checkedCoalesce })
  edge?.subscribe(gens)
  const defaults = { ttl: gens.ttl, statuses, maxEntryBytes: checkedMaxEntryBytes, staleIfError: checkedStaleIfError, staleIfErrorTimeout: checkedStaleTimeout }
  return new HttpCache(gens, defaults, { coalesceTimeoutMs: checkedCoalesce, edge, routeStats })
}
