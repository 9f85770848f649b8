import { GroupcacheError } from '../errors.js'
import { digest, encodeMapping } from '../core/encoding.js'
import { groupName, missingParams, type CompiledGroup, type GroupDef } from '../core/groups.js'
import { positiveNumber, type Generations } from '../core/generations.js'
import { versionKey } from '../core/keys.js'
import { newRouteCounts, type RouteCounts, type RouteStats } from '../observability/stats.js'

/** Per-route cache options (Fastify `config.cache`, Express `gc.route(...)`). */
export interface RouteCacheOptions {
  /** One group the response depends on. An array here is one list-of-params group. */
  group?: GroupDef
  /**
   * Groups the response depends on; a list-of-params group is a nested array.
   * With neither `group` nor `groups`, the response depends on the view group
   * `{ route: <pattern>, ...params }`.
   */
  groups?: readonly GroupDef[]
  /**
   * Time to live of an entry, in seconds.
   * @default the plugin's `ttl` (60)
   */
  ttl?: number
  /** Groups bumped, against the request's params, when a response to this route is sent (any status). */
  bumps?: readonly GroupDef[]
  /**
   * Request headers whose values are part of the key (case-insensitive).
   * @default []
   */
  vary?: readonly string[]
  /**
   * Which query params are part of the key: `true` all, `false` none, or an allowlist.
   * @default true
   */
  query?: boolean | readonly string[]
  /**
   * Response statuses that are stored.
   * @default the plugin's `statuses` ([200])
   */
  statuses?: readonly number[]
  /**
   * Serve and store requests that carry `Authorization`. Off by default: this is a
   * shared cache (RFC 9111 §3.5); turn it on only for responses that do not depend
   * on who asks, or add `'authorization'` to `vary`.
   * @default false
   */
  authorization?: boolean
  /**
   * Largest body stored, in bytes.
   * @default the plugin's `maxEntryBytes` (1 MiB)
   */
  maxEntryBytes?: number
  /**
   * Seconds an entry is kept past its `ttl` to answer identical requests that
   * arrive while one request re-runs the handler (`Cache-Status: … hit; ttl=-N`).
   * The first request after `ttl` always waits for the handler. A bump still
   * orphans stale entries at once.
   * @default 0
   */
  staleWhileRevalidate?: number
  /**
   * Seconds past an entry's `ttl` during which a handler that throws or
   * answers 5xx is answered with the stale entry instead
   * (`Cache-Status: … fwd=stale; fwd-status=500; ttl=-N; detail=stale-if-error`);
   * after a soft bump, the previous generation's entry answers errors while
   * the grace lasts. Entries are kept `ttl` + this long. Past the window the
   * error goes through.
   * @default the plugin's `staleIfError` (0: errors always go through)
   */
  staleIfError?: number
  /**
   * Seconds (fractions allowed) a handler may take when a stale entry could
   * answer instead (an entry expired less than `staleIfError` ago, or, after a
   * soft bump, the previous generation's entry within its grace): past it the
   * client, and every identical request waiting on that handler, gets the
   * stale entry (`Cache-Status: … fwd=stale; ttl=-N; detail=handler-timeout`).
   * The handler keeps running; what it answers later is neither written nor
   * stored. With no stale entry at hand the handler runs as long as it takes.
   * Needs `staleIfError` above 0.
   * @default the plugin's `staleIfErrorTimeout` (0: no time limit)
   */
  staleIfErrorTimeout?: number
  /**
   * Name this route's groups in the CDN headers of its responses (when the
   * plugin's `cdn` option is on); `false` leaves its responses untagged.
   * @default true
   */
  cdn?: boolean
}

/** Plugin-level defaults for route options. */
export interface RouteDefaults {
  ttl: number
  statuses: readonly number[]
  maxEntryBytes: number
  /** Seconds; 0 when absent. */
  staleIfError?: number
  /** Seconds; 0 (no time limit) when absent. */
  staleIfErrorTimeout?: number
}

const ROUTE_OPTION_NAMES = new Set(['group', 'groups', 'ttl', 'bumps', 'vary', 'query', 'statuses', 'authorization', 'maxEntryBytes', 'staleWhileRevalidate', 'cdn', 'staleIfError', 'staleIfErrorTimeout'])

/** A group of a route: its version key when it reads no values, else how to compute it. */
export interface RouteGroup {
  readonly key: string | undefined
  readonly group: CompiledGroup
}

/** What an adapter knows of a route when it compiles the route's cache options. */
export interface RouteInfo {
  /** The method-independent URL pattern. */
  readonly pattern: string
  /** For messages: `GET /users/:userId`. */
  readonly name: string
  /** The pattern's params; null when not known yet (the param check is then skipped). */
  readonly params: readonly string[] | null
  /** Does the route answer GET or HEAD? */
  readonly cacheable: boolean
  /**
   * The route's constraints (Fastify `version`, `host`, custom): routes that
   * differ only by them never share entries.
   */
  readonly constraints?: Readonly<Record<string, unknown>> | undefined
}

/** A route's cache configuration, checked and precomputed once at registration. */
export interface CompiledRoute {
  /** The method-independent URL pattern (`/users/:userId`). */
  readonly pattern: string
  /** For messages: `GET /users/:userId`. */
  readonly name: string
  /** False for a route that only declares `bumps` (or whose methods are never cached). */
  readonly cached: boolean
  readonly groups: readonly RouteGroup[]
  /** True when the response depends on the view group (no groups declared). */
  readonly viewGroup: boolean
  /** Route generation key `{ route: pattern }`, first of the route's version keys after the epoch. */
  readonly routeKey: string
  /**
   * Readable name of the route generation (`route=/users/:userId`): every
   * response of the route depends on it, so its CDN headers name it, and
   * `bumpRoute(pattern)` purges it.
   */
  readonly routeGroup: string
  /** The whole version key list (epoch, route, groups) when no group reads the request, computed once. */
  readonly staticKeys: readonly string[] | undefined
  /** Digest of the cache config: a changed config never serves entries of the old one. */
  readonly fingerprint: string
  readonly ttlMs: number
  /** How long past `ttlMs` an entry may answer requests that arrive during a revalidation. */
  readonly staleMs: number
  /** How long past `ttlMs` an entry may answer a request whose handler failed (stale-if-error). */
  readonly staleIfErrorMs: number
  /** How long a handler may take when a stale entry could answer in its place (0: no limit). */
  readonly staleIfErrorTimeoutMs: number
  readonly statuses: ReadonlySet<number>
  /** Lower-cased header names, declared by the route. */
  readonly vary: readonly string[]
  /**
   * Request headers the route's responses were seen to vary on (a `Vary` added by
   * the handler or an `onSend` hook), learned at run time and part of the key
   * from then on. Bounded by {@link LEARNED_VARY_MAX}.
   */
  readonly learnedVary: string[]
  readonly query: boolean | ReadonlySet<string>
  readonly authorization: boolean
  readonly maxEntryBytes: number
  readonly bumps: readonly CompiledGroup[]
  /** The pattern's params (empty when not known). */
  readonly params: readonly string[]
  /** Name the route's groups in CDN headers (when the plugin's cdn option is on). */
  readonly cdn: boolean
  /** This route's live counters for stats(), incremented in place (shared by routes of one name). */
  readonly counts: RouteCounts
}

/** Most request headers a route learns to vary on; a response naming more is not stored. */
export const LEARNED_VARY_MAX = 8

/** Constraints in a stable text form (a RegExp as its source, not `{}`). */
function constraintsText(constraints: Readonly<Record<string, unknown>> | undefined): string {
  if (constraints === undefined) return ''
  return JSON.stringify(Object.keys(constraints).sort().map((name) => {
    const value = constraints[name]
    return [name, value instanceof RegExp ? `regexp:${String(value)}` : typeof value === 'string' ? value : `${typeof value}:${String(JSON.stringify(value) ?? value)}`]
  }))
}

export function routeKeyFor(gens: Generations, pattern: string): string {
  return versionKey(gens.prefix, { route: pattern })
}

/** Readable name of a route generation (`route=/users/:userId`), as bumps, bump subscribers and CDN keys name it. */
export function routeGroupName(pattern: string): string {
  return groupName(encodeMapping({ route: pattern }))
}

/**
 * Checks a route's cache options and precomputes what every request needs.
 * Throws a GroupcacheError naming the route and the option or group at fault.
 */
export function compileRoute(
  gens: Generations,
  defaults: RouteDefaults,
  route: RouteInfo,
  config: unknown,
  routeStats?: RouteStats
): CompiledRoute {
  const where = `groupcache: route ${route.name}: `
  const options: RouteCacheOptions = config === true ? {} : (config as RouteCacheOptions)
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}cache config must be true or an object, got ${JSON.stringify(config)}`)
  }
  for (const name of Object.keys(options)) {
    if (!ROUTE_OPTION_NAMES.has(name)) {
      throw new GroupcacheError('GC_INVALID_OPTION', `${where}unknown cache option "${name}" (known: ${[...ROUTE_OPTION_NAMES].join(', ')})`)
    }
  }
  if (options.group !== undefined && options.groups !== undefined) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}give either "group" or "groups", not both`)
  }
  if (options.groups !== undefined && !Array.isArray(options.groups)) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option groups must be an array of group definitions (use "group" for one)`)
  }
  const compileChecked = (def: unknown, option: string): CompiledGroup => {
    const group = gens.compile(def, `${where}${option}: `)
    const missing = route.params === null ? [] : missingParams(group, route.params)
    if (missing.length > 0) {
      throw new GroupcacheError(
        'GC_UNKNOWN_PARAM',
        `${where}${option}: group ${group.label} names param${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')}, which the route does not have (it has: ${(route.params as readonly string[]).join(', ') || 'no params'})`
      )
    }
    return group
  }

  const defs: readonly unknown[] = options.group !== undefined ? [options.group] : (options.groups ?? [])
  const groups = defs.map((def): RouteGroup => {
    const group = compileChecked(def, options.group !== undefined ? 'group' : 'groups')
    return { group, key: group.params?.length === 0 ? gens.versionKey(group, {}) : undefined }
  })
  if (options.bumps !== undefined && !Array.isArray(options.bumps)) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option bumps must be an array of group definitions`)
  }
  const bumps = (options.bumps ?? []).map((def) => compileChecked(def, 'bumps'))

  const ttl = positiveNumber(options.ttl ?? defaults.ttl, 'ttl', where)
  const maxEntryBytes = positiveNumber(options.maxEntryBytes ?? defaults.maxEntryBytes, 'maxEntryBytes', where)
  const stale = seconds(options.staleWhileRevalidate ?? 0, 'staleWhileRevalidate', where)
  const staleIfError = seconds(options.staleIfError ?? defaults.staleIfError ?? 0, 'staleIfError', where)
  const staleIfErrorTimeout = timerSeconds(options.staleIfErrorTimeout ?? defaults.staleIfErrorTimeout ?? 0, 'staleIfErrorTimeout', where)
  const statuses = checkStatuses(options.statuses ?? defaults.statuses, where)
  const vary = checkStringList(options.vary ?? [], 'vary', where).map((h) => h.toLowerCase())
  const query = options.query ?? true
  if (typeof query !== 'boolean') checkStringList(query, 'query', where)
  if (options.authorization !== undefined && typeof options.authorization !== 'boolean') {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option authorization must be a boolean`)
  }
  if (options.cdn !== undefined && typeof options.cdn !== 'boolean') {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option cdn must be a boolean, got ${JSON.stringify(options.cdn)}`)
  }
  const cacheOnly = Object.keys(options).filter((k) => k !== 'bumps')
  if (!route.cacheable && cacheOnly.length > 0) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}only GET and HEAD responses are cached, so only "bumps" applies here (got: ${cacheOnly.join(', ')})`)
  }

  const fingerprint = digest(
    JSON.stringify([
      defs.map((def) => (typeof def === 'function' ? def.toString() : JSON.stringify(def))),
      ttl,
      statuses,
      vary,
      typeof query === 'boolean' ? query : [...query].sort(),
      options.authorization === true,
      maxEntryBytes,
      stale,
      constraintsText(route.constraints)
    ])
  ).slice(0, 16)

  const routeKey = routeKeyFor(gens, route.pattern)
  const cached = route.cacheable && (cacheOnly.length > 0 || options.bumps === undefined)
  return {
    pattern: route.pattern,
    name: route.name,
    // An object holding only `bumps` declares bumps, not caching.
    cached,
    groups,
    viewGroup: groups.length === 0,
    routeKey,
    routeGroup: routeGroupName(route.pattern),
    staticKeys: groups.length > 0 && groups.every((g) => g.key !== undefined) ? [gens.epochKey, routeKey, ...groups.map((g) => g.key as string)] : undefined,
    fingerprint,
    ttlMs: ttl * 1000,
    staleMs: stale * 1000,
    staleIfErrorMs: staleIfError * 1000,
    // Inert without a stale-if-error window: no entry could answer in the handler's place.
    staleIfErrorTimeoutMs: staleIfError > 0 ? staleIfErrorTimeout * 1000 : 0,
    statuses: new Set(statuses),
    vary,
    learnedVary: [],
    query: typeof query === 'boolean' ? query : new Set(query),
    authorization: options.authorization === true,
    maxEntryBytes,
    bumps,
    params: route.params ?? [],
    cdn: options.cdn !== false,
    // Routes that only bump are never looked up: they get counters outside the table.
    counts: cached && routeStats !== undefined ? routeStats.counts(route.name) : newRouteCounts()
  }
}

/** A number of seconds, 0 or more; a GroupcacheError naming the option otherwise. */
export function seconds(value: unknown, name: string, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option ${name} must be a number of seconds (0 or more), got ${JSON.stringify(value)}`)
  }
  return value
}

/** Longest delay a Node timer keeps (about 24.8 days); a longer one fires at once. */
const MAX_TIMER_SECONDS = (2 ** 31 - 1) / 1000

/** A number of seconds a timer waits: as {@link seconds}, and no longer than a Node timer can wait. */
export function timerSeconds(value: unknown, name: string, where: string): number {
  const checked = seconds(value, name, where)
  if (checked > MAX_TIMER_SECONDS) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option ${name} must be at most ${MAX_TIMER_SECONDS} seconds (a Node timer's longest delay), got ${checked}`)
  }
  return checked
}

function checkStatuses(statuses: unknown, where: string): number[] {
  if (!Array.isArray(statuses) || statuses.some((s) => !Number.isInteger(s) || s < 100 || s > 599)) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option statuses must be an array of HTTP status codes, got ${JSON.stringify(statuses)}`)
  }
  return statuses as number[]
}

function checkStringList(list: unknown, name: string, where: string): string[] {
  if (!Array.isArray(list) || list.some((s) => typeof s !== 'string' || s === '')) {
    throw new GroupcacheError('GC_INVALID_OPTION', `${where}option ${name} must be an array of non-empty strings, got ${JSON.stringify(list)}`)
  }
  return list as string[]
}
