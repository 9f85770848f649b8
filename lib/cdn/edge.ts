import type { BumpListener } from '../core/generations.js'
import { GroupcacheError } from '../errors.js'
import { cdnConfig, cdnResponseHeaders, checkRouteGroupCount, invalidationHeader, type CdnConfig, type CdnOptions, type HeaderPair } from './headers.js'
import type { CdnPurger } from './purger.js'

/** The CDN options of the Fastify plugin and of `expressCache()` (README "Behind a CDN"), as given. */
export interface EdgeOptions {
  cdn?: boolean | CdnOptions | undefined
  purgers?: readonly CdnPurger[] | undefined
  awaitPurges?: boolean | undefined
}

const PURGER_METHODS = ['onBump', 'purge', 'idle', 'close'] as const
/** A response whose groups could not be named: a purge would miss it, so the edge must not keep it. */
const NOT_AT_THE_EDGE: readonly HeaderPair[] = [['cdn-cache-control', 'no-store'], ['surrogate-control', 'no-store']]

/**
 * What one cache tells a CDN or proxy in front of the app: the headers
 * naming a response's groups, a mutation's `Cache-Group-Invalidation`, and
 * the purgers it subscribes to its bumps. Built once, at registration.
 */
export class Edge {
  /** Undefined when responses are not tagged (only purgers were given). */
  readonly config: CdnConfig | undefined
  /** The same, without edge freshness: for responses this cache did not keep. */
  readonly #tagsOnly: CdnConfig | undefined
  readonly #purgers: readonly CdnPurger[]
  readonly #awaitPurges: boolean
  readonly #unsubscribe: (() => void)[] = []

  private constructor(config: CdnConfig | undefined, purgers: readonly CdnPurger[], awaitPurges: boolean) {
    this.config = config
    this.#tagsOnly = config === undefined ? undefined : { ...config, edgeTtl: false }
    this.#purgers = purgers
    this.#awaitPurges = awaitPurges
  }

  /** Checks the options (errors name the option at fault); undefined when none is on. */
  static create(options: EdgeOptions): Edge | undefined {
    const { cdn, purgers = [], awaitPurges = false } = options
    const config = cdn === undefined || cdn === false ? undefined : cdnConfig(cdn, 'groupcache: ')
    if (!Array.isArray(purgers)) {
      throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option purgers must be an array of purgers (fastlyPurger(), cloudflarePurger(), varnishPurger()), got ${describe(purgers)}`)
    }
    purgers.forEach((purger: unknown, i) => {
      const missing = purger !== null && typeof purger === 'object' ? PURGER_METHODS.filter((m) => typeof (purger as Record<string, unknown>)[m] !== 'function') : PURGER_METHODS
      if (missing.length > 0) {
        throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option purgers[${i}] must be a purger (fastlyPurger(), cloudflarePurger(), varnishPurger() or an object with ${PURGER_METHODS.join(', ')}), got ${describe(purger)}`)
      }
      const namespace = (purger as CdnPurger).namespace
      // A purger in another namespace would name keys no response carried: every purge would miss, silently.
      if (config !== undefined && namespace !== undefined && namespace !== config.namespace) {
        throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option purgers[${i}] purges namespace ${JSON.stringify(namespace)} but option cdn.namespace is ${JSON.stringify(config.namespace)}: give both the same namespace`)
      }
    })
    if (typeof awaitPurges !== 'boolean') {
      throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option awaitPurges must be a boolean, got ${describe(awaitPurges)}`)
    }
    if (config === undefined && purgers.length === 0) return undefined
    return new Edge(config, [...purgers], awaitPurges)
  }

  /** Subscribes the purgers to a cache's bumps (called after a bump landed in the store). */
  subscribe(cache: { onBump(listener: BumpListener): () => void }): void {
    for (const purger of this.#purgers) this.#unsubscribe.push(cache.onBump(purger.onBump))
  }

  /**
   * At registration: a route whose groups could not all be named in a header
   * is an error naming it. `groupCount` is the groups it declares; the
   * limit leaves room for its route generation and the deployment key, which
   * its headers name too (see MAX_GROUPS_PER_ROUTE).
   */
  checkRoute(groupCount: number, route: string): void {
    if (this.config !== undefined) checkRouteGroupCount(groupCount, route)
  }

  /**
   * The headers naming a response's groups (`names`; undefined when they
   * could not be resolved), plus its edge freshness when this cache kept the
   * response (a hit, or a stored miss): the edge keeps what the origin
   * keeps, no longer than the route's ttl (the `Age` of a hit counts).
   */
  responseHeaders(names: readonly string[] | undefined, ttlSeconds: number, kept: boolean, cacheControl: string | undefined): readonly HeaderPair[] {
    const config = kept ? this.config : this.#tagsOnly
    if (config === undefined) return []
    if (names === undefined) return NOT_AT_THE_EDGE
    return cdnResponseHeaders(config, names, ttlSeconds, cacheControl)
  }

  /**
   * Called with a mutation's bumps once bumpKeys() resolved, before its
   * response is written: waits for the purges when `awaitPurges` is on, and
   * gives the `Cache-Group-Invalidation` header. Nothing when the bump did
   * not land: it is not a bump yet (its retry purges when it lands).
   */
  async afterBump(names: readonly string[], landed: boolean): Promise<HeaderPair | undefined> {
    if (!landed) return undefined
    // Purgers never reject; a purger written by the app might: it still never fails the mutation.
    if (this.#awaitPurges) await Promise.allSettled(this.#purgers.map((purger) => purger.idle()))
    return this.config === undefined ? undefined : invalidationHeader(this.config, names)
  }

  /** Unsubscribes the purgers, then sends what they hold and closes them. Call after the cache was closed (its last bumps purge too). */
  async close(): Promise<void> {
    for (const off of this.#unsubscribe.splice(0)) off()
    await Promise.allSettled(this.#purgers.map((purger) => purger.close()))
  }
}

function describe(value: unknown): string {
  if (value === null || typeof value !== 'object') return typeof value === 'string' ? JSON.stringify(value) : String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}
