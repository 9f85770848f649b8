import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { subscribeBreaker, subscribeBumps, subscribeFaults, subscribeLookups, subscribeStores, type BreakerState } from '../lib/index.js'

/** Prometheus metrics of one cache, built only from groupcache's diagnostics channels. */
export interface CacheMetrics {
  readonly registry: Registry
  /** The exposition text for `GET /metrics`. */
  text(): Promise<string>
  /** Unsubscribes from the channels. */
  close(): void
}

/** Lookups take microseconds on memory, about a millisecond on Redis: buckets span both. */
const LOOKUP_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.25]
const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 }

/**
 * A group's family, for a label with a bounded set of values: `user:42` →
 * `user`, `blogId=7,postId=1` → `blogId,postId`. Labelling by the full name
 * would make one time series per user.
 */
export function groupFamily(name: string): string {
  if (name.includes('=')) return name.split(',').map((pair) => pair.slice(0, pair.indexOf('='))).join(',')
  const colon = name.indexOf(':')
  return colon === -1 ? name : name.slice(0, colon)
}

/**
 * Subscribes to the channels of the cache with this key prefix (events carry
 * it, so two caches in one process are counted apart) and keeps the metrics
 * in a registry of its own.
 */
export function cacheMetrics(prefix = 'gc'): CacheMetrics {
  const registry = new Registry()
  const registers = [registry]
  const lookups = new Counter({ name: 'groupcache_lookups_total', help: 'Cache lookups by route and outcome (hit, stale, miss, collapsed, bypass).', labelNames: ['route', 'outcome'], registers })
  const duration = new Histogram({ name: 'groupcache_lookup_duration_seconds', help: 'Time from the start of a lookup until the request was answered from the cache or handed to its handler.', labelNames: ['route', 'outcome'], buckets: LOOKUP_BUCKETS, registers })
  const stored = new Counter({ name: 'groupcache_stored_total', help: 'Handler responses written to the store.', labelNames: ['route'], registers })
  const notStored = new Counter({ name: 'groupcache_not_stored_total', help: 'Handler responses not stored, by reason (stale-if-error, handler-timeout: a stale entry answered in its place).', labelNames: ['route', 'reason'], registers })
  const bumps = new Counter({ name: 'groupcache_bumps_total', help: 'Group bumps that reached the store, by group family (user:42 counts as user).', labelNames: ['group'], registers })
  const faults = new Counter({ name: 'groupcache_store_faults_total', help: 'Store calls that failed or timed out (served uncached).', labelNames: ['what', 'code'], registers })
  const breaker = new Gauge({ name: 'groupcache_breaker_state', help: 'Circuit breaker in front of the store: 0 closed, 1 half-open, 2 open.', registers })
  breaker.set(0)

  /** Only this cache's messages: every message carries its cache's key prefix. */
  const mine =
    <T extends { prefix: string }>(listener: (message: T) => void) =>
    (message: T): void => {
      if (message.prefix === prefix) listener(message)
    }
  const stops = [
    subscribeLookups({
      answered: mine((lookup) => {
        const labels = { route: lookup.route, outcome: lookup.outcome! }
        lookups.inc(labels)
        duration.observe(labels, lookup.duration! / 1000)
      })
    }),
    // A stale entry answering in a handler's place (reason stale-if-error or handler-timeout) comes here: its
    // lookup was counted as a miss when the handler started.
    subscribeStores(
      mine((message) => {
        if (message.stored) stored.inc({ route: message.route })
        else notStored.inc({ route: message.route, reason: message.reason })
      })
    ),
    subscribeBumps(mine((message) => message.groups.forEach((group) => bumps.inc({ group: groupFamily(group) })))),
    subscribeFaults(mine((message) => faults.inc({ what: message.what, code: message.code ?? 'none' }))),
    subscribeBreaker(mine((message) => breaker.set(BREAKER_VALUE[message.to])))
  ]
  return {
    registry,
    text: () => registry.metrics(),
    close: () => {
      for (const stop of stops.splice(0)) stop()
    }
  }
}
