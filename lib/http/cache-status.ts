import type { NotStoredReason } from './policy.js'

/** Hit values and Age values by second, made once: a hit then allocates neither string. */
const hits: string[] = []
const ages: string[] = []
const REUSED_SECONDS = 86_400

/** RFC 9211 Cache-Status values, as the README documents them. */
export const CACHE_STATUS = {
  stored: 'groupcache; fwd=miss; stored',
  miss: 'groupcache; fwd=miss',
  /** A miss that was not stored, saying why. */
  notStored: (detail: NotStoredReason): string => NOT_STORED[detail],
  collapsed: 'groupcache; fwd=miss; collapsed',
  hit: (ttlSeconds: number): string =>
    ttlSeconds >= 0 && ttlSeconds < REUSED_SECONDS ? (hits[ttlSeconds] ??= `groupcache; hit; ttl=${ttlSeconds}`) : `groupcache; hit; ttl=${ttlSeconds}`,
  bypass: (detail: BypassDetail): string => `groupcache; fwd=bypass; detail=${detail}`,
  /** The previous generation's entry, served during a soft bump's grace while another request recomputes. */
  softBump: (ttlSeconds: number): string => `groupcache; hit; ttl=${ttlSeconds}; detail=soft-bump`,
  /**
   * A stale entry answering a request whose handler failed: the request went
   * forward (`fwd=stale`) and got `fwd-status` (RFC 9211 §2.3, §2.4).
   */
  staleIfError: (fwdStatus: number, ttlSeconds: number): string => `groupcache; fwd=stale; fwd-status=${fwdStatus}; ttl=${ttlSeconds}; detail=stale-if-error`,
  /**
   * A stale entry answering a request whose handler did not answer within
   * `staleIfErrorTimeout`: the request went forward (`fwd=stale`) but no
   * response came back in time, so there is no `fwd-status` (RFC 9211 §2.4).
   */
  staleTimeout: (ttlSeconds: number): string => `groupcache; fwd=stale; ttl=${ttlSeconds}; detail=handler-timeout`
} as const

const NOT_STORED = {} as Record<NotStoredReason, string>
for (const detail of ['status', 'set-cookie', 'no-store', 'private', 'no-cache', 'vary', 'streamed', 'too-big', 'head', 'store-error'] as const) {
  NOT_STORED[detail] = `groupcache; fwd=miss; detail=${detail}`
}

/** Why the cache was skipped for a request. */
export type BypassDetail =
  /** Not GET or HEAD. */
  | 'method'
  /** The request carries Authorization and the route did not opt in. */
  | 'authorization'
  /** A group of this request has a bump that has not reached the store yet. */
  | 'pending-bump'
  /** A group could not be resolved for this request (a function group threw, a value was bad). */
  | 'group-error'
  /** The store failed. */
  | 'store-error'
  /** The store did not answer within the timeout. */
  | 'store-timeout'
  /** The route declares `config.cache` but was added before the plugin had loaded (`app.register` not awaited). */
  | 'registered-before-plugin'
  /** The circuit breaker is open after repeated store faults: the store is not called for a while. */
  | 'store-unavailable'

/** The Age header value for a number of whole seconds. */
export function ageValue(seconds: number): string {
  return seconds < REUSED_SECONDS ? (ages[seconds] ??= String(seconds)) : String(seconds)
}
