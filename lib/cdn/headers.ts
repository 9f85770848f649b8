import { GroupcacheError } from '../errors.js'
import { checkNamespace, MAX_KEYS_PER_RESPONSE, VENDORS, vendorKey, vendorKeys, type Vendor } from './names.js'

/** How a response tells a CDN or proxy in front what it depends on (README "Behind a CDN"). */
export interface CdnOptions {
  /**
   * Tag headers to emit, by vendor: `cacheGroups` (RFC 9875 `Cache-Groups`),
   * `fastly` (`Surrogate-Key`), `cloudflare` (`Cache-Tag`), `akamai`
   * (`Edge-Cache-Tag`), `xkey` (Varnish).
   * @default ['cacheGroups']
   */
  headers?: readonly Vendor[]
  /**
   * Deployment-wide key, carried by every response and prefixed to every
   * group key (`gc/user:42`): purging it drops everything this deployment
   * put in the CDN; two apps sharing a CDN service keep apart by it.
   * @default 'gc'
   */
  namespace?: string
  /**
   * Tell the CDN how long to keep a response, from the route's ttl:
   * `'cdn-cache-control'` adds `CDN-Cache-Control: max-age=<ttl>` (RFC 9213,
   * read by CDNs only); `'s-maxage'` adds `s-maxage=<ttl>` to the response's
   * `Cache-Control` (read by every shared cache); `false` leaves freshness to
   * the response's own headers.
   * @default false
   */
  edgeTtl?: 'cdn-cache-control' | 's-maxage' | false
  /**
   * Emit RFC 9875 `Cache-Group-Invalidation` on a mutation's response, naming
   * the groups it bumped, so a cache the response passes through invalidates them.
   * @default true
   */
  invalidationHeader?: boolean
}

/** {@link CdnOptions} checked, with defaults applied. */
export interface CdnConfig {
  readonly headers: readonly Vendor[]
  readonly namespace: string
  readonly edgeTtl: 'cdn-cache-control' | 's-maxage' | false
  readonly invalidationHeader: boolean
}

const OPTION_NAMES = new Set(['headers', 'namespace', 'edgeTtl', 'invalidationHeader'])

/**
 * Most groups a cached route may declare: every header also carries the
 * route generation (`route=<pattern>`, which `bumpRoute(pattern)` purges) and
 * the deployment key.
 */
export const MAX_GROUPS_PER_ROUTE = MAX_KEYS_PER_RESPONSE - 2

/** Most names a response's header carries: its groups and its route generation; the deployment key comes on top. */
const MAX_NAMES_PER_RESPONSE = MAX_KEYS_PER_RESPONSE - 1

/** Checks CDN options at registration: unknown names and bad values are errors naming the option. */
export function cdnConfig(options: CdnOptions | true, where = 'groupcache: '): CdnConfig {
  const given: CdnOptions = options === true ? {} : options
  if (given === null || typeof given !== 'object') {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option cdn must be true or an object, got ${String(given)}`)
  }
  for (const name of Object.keys(given)) {
    if (!OPTION_NAMES.has(name)) throw new GroupcacheError('GC_INVALID_OPTION', `${where}unknown option cdn.${name} (known: ${[...OPTION_NAMES].join(', ')})`)
  }
  const { headers = ['cacheGroups'], namespace = 'gc', edgeTtl = false, invalidationHeader = true } = given
  if (!Array.isArray(headers) || headers.some((h) => !Object.hasOwn(VENDORS, h))) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option cdn.headers must list vendors among ${Object.keys(VENDORS).join(', ')}, got ${JSON.stringify(headers)}`)
  }
  if (edgeTtl !== false && edgeTtl !== 'cdn-cache-control' && edgeTtl !== 's-maxage') {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option cdn.edgeTtl must be 'cdn-cache-control', 's-maxage' or false, got ${JSON.stringify(edgeTtl)}`)
  }
  if (typeof invalidationHeader !== 'boolean') {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option cdn.invalidationHeader must be a boolean, got ${JSON.stringify(invalidationHeader)}`)
  }
  return { headers: [...new Set(headers)], namespace: checkNamespace(namespace), edgeTtl, invalidationHeader }
}

/** At registration: a route whose groups could not all be named in a header is an error naming it. */
export function checkRouteGroupCount(count: number, route: string): void {
  if (count > MAX_GROUPS_PER_ROUTE) {
    throw new GroupcacheError(
      'GC_INVALID_OPTION',
      `groupcache: route ${route}: ${count} groups, but a CDN header carries at most ${MAX_GROUPS_PER_ROUTE} (RFC 9875 caches keep ${MAX_KEYS_PER_RESPONSE} keys: one is the route generation, one the deployment key); declare fewer or disable cdn for this route`
    )
  }
}

export type HeaderPair = [name: string, value: string]

/**
 * The headers naming a cached response's groups, for every configured
 * vendor, plus its edge freshness. `groupNames` are the readable names of
 * what the response depends on: its groups and, from the adapters, its
 * route generation (`route=/users/:userId`). `cacheControl` is the
 * response's current `Cache-Control` (for `edgeTtl: 's-maxage'`). Set each
 * pair, replacing any value the handler set.
 *
 * Over 31 names (a route registered without {@link checkRouteGroupCount}),
 * no keys could be dropped safely — a purge would miss the response — so
 * the response is marked not storable at the edge instead.
 */
export function cdnResponseHeaders(config: CdnConfig, groupNames: readonly string[], ttlSeconds: number, cacheControl?: string): HeaderPair[] {
  const out: HeaderPair[] = []
  if (new Set(groupNames).size > MAX_NAMES_PER_RESPONSE) {
    out.push(['cdn-cache-control', 'no-store'], ['surrogate-control', 'no-store'])
    return out
  }
  for (const vendor of config.headers) {
    const rules = VENDORS[vendor]
    out.push([rules.header, rules.render(vendorKeys(vendor, config.namespace, groupNames))])
  }
  const ttl = Math.max(0, Math.floor(ttlSeconds))
  if (config.edgeTtl === 'cdn-cache-control') out.push(['cdn-cache-control', `max-age=${ttl}`])
  else if (config.edgeTtl === 's-maxage') {
    const merged = withSMaxage(cacheControl, ttl)
    if (merged !== undefined) out.push(['cache-control', merged])
  }
  return out
}

/**
 * `Cache-Control` with `s-maxage` set to ttl; undefined when the response
 * must not be stored by a shared cache (`private`, `no-store`), which an
 * s-maxage must not override.
 */
export function withSMaxage(cacheControl: string | undefined, ttl: number): string | undefined {
  const directives = (cacheControl ?? '').split(',').map((d) => d.trim()).filter((d) => d !== '')
  if (directives.some((d) => /^(private|no-store)\b/i.test(d))) return undefined
  return [...directives.filter((d) => !/^s-maxage\b/i.test(d)), `s-maxage=${ttl}`].join(', ')
}

/**
 * RFC 9875 `Cache-Group-Invalidation` for a mutation's response: the groups
 * it bumped, in the same encoding as `Cache-Groups`. Undefined when nothing
 * was bumped or the option is off.
 */
export function invalidationHeader(config: CdnConfig, bumpedNames: readonly string[]): HeaderPair | undefined {
  if (!config.invalidationHeader || bumpedNames.length === 0) return undefined
  const keys = new Set(bumpedNames.map((name) => vendorKey('cacheGroups', config.namespace, name)))
  // A cache may ignore members past the 32 RFC 9875 guarantees: name the deployment key instead (more purged, never less).
  return ['cache-group-invalidation', VENDORS.cacheGroups.render(keys.size > MAX_KEYS_PER_RESPONSE ? [config.namespace] : [...keys])]
}
