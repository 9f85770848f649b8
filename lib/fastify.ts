import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteHandlerMethod, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { graceOf, type BumpOptions } from './core/generations.js'
import type { GroupDef, GroupValues } from './core/groups.js'
import { GroupcacheError } from './errors.js'
import { fastifyRouteParams } from './fastify-params.js'
import { cacheApi, type CacheApi } from './http/api.js'
import { CACHE_STATUS } from './http/cache-status.js'
import { holdUntilDecided, REPLACE, type Held, type RawResponse, type Replacement } from './http/capture.js'
import { mergeVary } from './http/entry.js'
import { applyRecordedBumps, whenReady, type Begin, type HttpCache, type HttpRequest, type Miss, type ReadyResponse } from './http/http-cache.js'
import { createHttpCache, type GroupcacheOptions } from './http/options.js'
import type { HeaderPair } from './cdn/headers.js'
import type { CompiledRoute, RouteCacheOptions } from './http/route.js'

/** `app.groupcache` */
export type GroupcacheDecorator = CacheApi

/** Options of the Fastify plugin. */
export interface FastifyGroupcacheOptions extends GroupcacheOptions {
  /**
   * Where a cached route looks its request up, and so where a hit is answered.
   * - `'handler'`: just before the route's handler, after every `onRequest`,
   *   `preParsing`, `preValidation` and `preHandler` hook of the route
   *   (authentication, rate limits, validation), whatever order the plugins
   *   adding them were registered in.
   * - `'onRequest'`: in an `onRequest` hook, the shortest path. A hit then skips
   *   every hook after it: authentication in `preValidation`/`preHandler`,
   *   body parsing and validation, a rate limit or CORS hook added by a plugin
   *   registered after groupcache. Only for apps with no such hooks on cached routes.
   * @default 'handler'
   */
  lookupAt?: 'handler' | 'onRequest'
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache this route's GET/HEAD responses, or declare its bumps (see RouteCacheOptions). */
    cache?: boolean | RouteCacheOptions
  }
  interface FastifyReply {
    /**
     * Records a bump of a group, applied after the handler finishes and before
     * the response is written. Values default to the request's params.
     * Returns this reply with the route's types, so a chained `.send()` is
     * still checked against the route's `Reply` type. With `{ grace }` (seconds)
     * it is a soft bump: the old entries may answer, stale, while one request
     * per entry recomputes.
     */
    bumpGroup(def: GroupDef, values?: GroupValues, options?: BumpOptions): this
  }
  interface FastifyInstance {
    groupcache: GroupcacheDecorator
  }
}

const kMiss = Symbol('groupcache.miss')
const kBumps = Symbol('groupcache.bumps')
/** Marks a route config compiled by this plugin's onRoute hook. */
const kCompiled = Symbol('groupcache.compiled')

interface Bumps {
  keys: string[]
  names: string[]
  /** Seconds of grace per bump (0: hard). */
  graces: number[]
}
type Req = FastifyRequest & { [kMiss]: Miss | null }
type Rep = FastifyReply & { [kBumps]: Bumps | null }
type Done = (err?: Error | null) => void

function addHook(routeOptions: RouteOptions, name: 'onRequest' | 'preHandler', hook: unknown): void {
  const existing = routeOptions[name] as unknown
  ;(routeOptions as unknown as Record<string, unknown[]>)[name] = existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

function bumpsOf(reply: FastifyReply): Bumps {
  return ((reply as Rep)[kBumps] ??= { keys: [], names: [], graces: [] })
}

const plugin: FastifyPluginAsync<FastifyGroupcacheOptions> = async (fastify, options) => {
  const { lookupAt = 'handler', ...cacheOptions } = options as FastifyGroupcacheOptions
  if (lookupAt !== 'handler' && lookupAt !== 'onRequest') {
    throw new GroupcacheError('GC_INVALID_OPTION', `groupcache: option lookupAt must be 'handler' or 'onRequest', got ${JSON.stringify(lookupAt)}`)
  }
  const http = createHttpCache(cacheOptions, fastify.log)
  const gens = http.gens

  fastify.decorate('groupcache', cacheApi(http))
  fastify.decorateRequest(kMiss, null)
  fastify.decorateReply(kBumps, null)
  fastify.decorateReply('bumpGroup', function bumpGroup(this: FastifyReply, def: GroupDef, values?: GroupValues, options?: BumpOptions) {
    const target = http.bumpTarget(def, values ?? (this.request.params as GroupValues), this.request)
    const grace = graceOf(options)
    if (this.sent) {
      void applyRecordedBumps(gens, [target.key], [target.name], [grace])
    } else {
      const bumps = bumpsOf(this)
      bumps.keys.push(target.key)
      bumps.names.push(target.name)
      bumps.graces.push(grace)
    }
    return this
  })

  // Applies the bumps a handler recorded (and the route declared) after the
  // handler finished and before the response is written: a client that got
  // the mutation's response never reads the old data afterwards. bumpKeys
  // never rejects: a bump the store refuses is kept and retried.
  fastify.addHook('onSend', function applyBumps(_request, reply, payload, done) {
    const bumps = (reply as Rep)[kBumps]
    if (bumps === null) return done(null, payload)
    ;(reply as Rep)[kBumps] = null
    const edge = http.edge
    void applyRecordedBumps(gens, bumps.keys, bumps.names, bumps.graces).then(async (landed) => {
      // Cache-Group-Invalidation (and, with awaitPurges, the purges) only once the bump landed.
      const invalidation = edge === undefined ? undefined : await edge.afterBump(bumps.names, landed)
      if (invalidation !== undefined) reply.header(invalidation[0], invalidation[1])
      done(null, payload)
    })
  })

  // Routes declared before this plugin had loaded (`app.register(groupcache)`
  // without await) never reached the onRoute hook below. Only then is this
  // guard added: such a route is served uncached, says why, and logs once.
  if (!fastify.printRoutes().startsWith('(empty tree)')) {
    const warned = new Set<string>()
    fastify.addHook('onRequest', function lateRouteGuard(request, reply, done) {
      const config = request.routeOptions.config as { cache?: unknown; [kCompiled]?: true }
      if (config.cache === undefined || config.cache === false || config[kCompiled] === true) return done()
      const name = `${request.routeOptions.method.toString()} ${String(request.routeOptions.url)}`
      if (!warned.has(name)) {
        warned.add(name)
        gens.logger.error({ route: name }, `groupcache: route ${name} declares config.cache but was added before the groupcache plugin had loaded, so it is not cached: use \`await app.register(groupcache)\` before adding routes`)
      }
      reply.header('cache-status', CACHE_STATUS.bypass('registered-before-plugin'))
      done()
    })
  }

  fastify.addHook('onRoute', (routeOptions) => {
    const config = routeOptions.config?.cache
    if (config === undefined || config === false) return
    routeOptions.config = { ...routeOptions.config, [kCompiled]: true } as typeof routeOptions.config
    const methods = ([] as string[]).concat(routeOptions.method)
    const route = http.compile(
      {
        pattern: routeOptions.url,
        name: `${methods.join(',')} ${routeOptions.url}`,
        params: fastifyRouteParams(routeOptions.url),
        cacheable: methods.some((m) => m === 'GET' || m === 'HEAD'),
        constraints: routeOptions.constraints as Record<string, unknown> | undefined
      },
      config
    )
    if (route.bumps.length > 0) addHook(routeOptions, 'onRequest', declaredBumpsHook(http, route))
    if (!route.cached) return
    if (lookupAt === 'onRequest') addHook(routeOptions, 'onRequest', onRequestLookup(http, route))
    routeOptions.handler = cachedHandler(http, route, routeOptions.handler, lookupAt)
  })

  fastify.addHook('onClose', () => http.close())
}

function declaredBumpsHook(http: HttpCache, route: CompiledRoute) {
  // Resolved before the handler runs, so a group that cannot be resolved fails the request before any mutation.
  return function recordDeclaredBumps(request: FastifyRequest, reply: FastifyReply, done: Done): void {
    const bumps = bumpsOf(reply)
    for (const { key, name } of http.declaredBumpTargets(route, request.params as GroupValues, request)) {
      bumps.keys.push(key)
      bumps.names.push(name)
      bumps.graces.push(0)
    }
    done()
  }
}

function httpRequest(request: FastifyRequest): HttpRequest {
  return {
    method: request.method,
    url: request.url,
    headers: request.headers,
    params: request.params as GroupValues,
    raw: request,
    host: request.host,
    query: request.query,
    log: request.log
  }
}

/** Answers from the cache: stored headers over the live ones, except Vary, which is merged (CORS's Origin stays). */
function serve(http: HttpCache, route: CompiledRoute, req: HttpRequest, reply: FastifyReply, answer: ReadyResponse): FastifyReply {
  reply.code(answer.status)
  const { headers } = answer
  for (const name of Object.keys(headers)) {
    const value = headers[name] as string | string[]
    reply.header(name, name === 'vary' && reply.hasHeader('vary') ? mergeVary(reply.getHeader('vary'), value) : value)
  }
  reply.header('cache-status', answer.cacheStatus)
  if (answer.age !== undefined) reply.header('age', answer.age)
  // Guarded: without the cdn option a hit pays nothing for it.
  if (http.edge !== undefined) setAll(reply, http.edgeHeaders(route, req, true, reply.getHeader('cache-control')))
  return reply.send(answer.body)
}

function setAll(reply: FastifyReply, headers: readonly HeaderPair[]): void {
  for (const [name, value] of headers) reply.header(name, value)
}

/** The headers of a cached answer written in place of a response: those set before the handler, then the stored ones. */
function hitHeaders(before: Record<string, unknown>, answer: ReadyResponse, edge: readonly HeaderPair[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const name of Object.keys(before)) {
    const value = before[name]
    out[name] = Array.isArray(value) ? value.map(String) : String(value)
  }
  for (const name of Object.keys(answer.headers)) {
    const value = answer.headers[name] as string | string[]
    out[name] = name === 'vary' && out.vary !== undefined ? mergeVary(out.vary, value) : value
  }
  for (const [name, value] of edge) out[name] = value
  out['cache-status'] = answer.cacheStatus
  // A stale answer is a stored entry: it always has an Age and a body.
  out.age = answer.age as string
  out['content-length'] = String((answer.body as Buffer).length)
  return out
}

/**
 * 'close' comes after the response is sent or when the client goes away first;
 * either way, requests waiting on this miss must not wait longer.
 */
function releaseOnClose(http: HttpCache, miss: Miss, reply: FastifyReply): void {
  reply.raw.once('close', () => http.abandon(miss))
}

/**
 * Runs the miss: remembers the headers already on the reply (set by hooks
 * that run on hits too), then holds the raw response until it is written, so
 * what is stored is what every onSend hook produced, judged on the headers
 * actually written. Then runs the handler, under the route's time limit
 * (staleIfErrorTimeout) when it has one.
 */
function runMiss(http: HttpCache, miss: Miss, req: HttpRequest, reply: FastifyReply, handler: () => unknown): unknown {
  const before = { ...reply.getHeaders() }
  const held = holdUntilDecided(reply.raw as unknown as RawResponse, miss.route.maxEntryBytes, (out) =>
    http.finish(miss, out.status, out.headers, out.body, before).then((finish): Record<string, string> | Replacement => {
      // stale-if-error: the stale entry is written as a hit would be, over the headers set before the handler.
      // Not marked cacheable for a CDN: a stale answer is for this request only.
      if (finish.stale !== undefined) {
        const edge = http.edgeHeaders(miss.route, req, false, finish.stale.headers['cache-control'])
        return { [REPLACE]: true, status: finish.stale.status, headers: hitHeaders(before, finish.stale, edge), body: finish.stale.body }
      }
      const extra: Record<string, string> = { 'cache-status': finish.cacheStatus }
      if (finish.etag !== undefined && out.headers.etag === undefined) extra.etag = finish.etag
      // Added to what is written, after the entry was made: never stored.
      const kept = finish.cacheStatus === CACHE_STATUS.stored
      for (const [name, value] of http.edgeHeaders(miss.route, req, kept, out.headers['cache-control'])) extra[name] = value
      return extra
    })
  )
  // Routes without a time limit pay nothing more.
  if (miss.route.staleIfErrorTimeoutMs === 0) return handler()
  let stale = false
  http.limit(miss, (answer) => {
    stale = true
    answerStale(http, miss, req, reply, held, before, answer)
  })
  const result = handler()
  if (!(result instanceof Promise)) return result
  return result.then(
    (value: unknown) => {
      if (!stale) return value
      // Answered stale already: what the handler returns is dropped (never sent, never stored).
      http.late(miss)
      return undefined
    },
    (err: unknown) => {
      if (!stale) throw err
      // The client has its answer; Fastify would log this as an error on a reply already sent.
      http.late(miss)
      reply.log.warn({ err, route: miss.route.name }, 'groupcache: a handler failed after a stale entry had answered in its place (staleIfErrorTimeout)')
      return undefined
    }
  )
}

/**
 * The handler overran its time limit: the stale entry is written as a hit
 * would be, over the headers set before the handler, and what the handler
 * sends later is dropped, without Fastify's "Reply was already sent" warning.
 */
function answerStale(http: HttpCache, miss: Miss, req: HttpRequest, reply: FastifyReply, held: Held, before: Record<string, unknown>, answer: ReadyResponse): void {
  const edge = http.edgeHeaders(miss.route, req, false, answer.headers['cache-control'])
  held.replace({ status: answer.status, headers: hitHeaders(before, answer, edge), body: answer.body }, () => http.late(miss))
  ;(reply as { send: unknown }).send = function lateSend(this: FastifyReply): FastifyReply {
    http.late(miss)
    return this
  }
}

function cachedHandler(http: HttpCache, route: CompiledRoute, original: RouteHandlerMethod, lookupAt: 'handler' | 'onRequest'): RouteHandlerMethod {
  function proceed(self: FastifyInstance, request: FastifyRequest, reply: FastifyReply, answer: Begin, req: HttpRequest): unknown {
    if (answer.kind === 'serve') return serve(http, route, req, reply, answer)
    if (answer.kind === 'bypass') {
      reply.header('cache-status', answer.cacheStatus)
      setAll(reply, http.edgeHeaders(route, req, false, undefined))
    } else {
      releaseOnClose(http, answer, reply)
      return runMiss(http, answer, req, reply, () => original.call(self, request, reply))
    }
    return original.call(self, request, reply)
  }
  if (lookupAt === 'onRequest') {
    return function groupcacheHandler(this: FastifyInstance, request, reply) {
      const miss = (request as Req)[kMiss]
      if (miss !== null) return runMiss(http, miss, httpRequest(request), reply, () => original.call(this, request, reply))
      return original.call(this, request, reply)
    }
  }
  // Versions are read here, after every hook before the handler and before the handler itself.
  // Callback style for a synchronous store: with the memory store a hit allocates no promise.
  return function groupcacheHandler(this: FastifyInstance, request, reply) {
    const req = httpRequest(request)
    const begin = http.begin(route, req)
    if (!(begin instanceof Promise)) return proceed(this, request, reply, begin, req)
    return begin.then((answer) => {
      const result = proceed(this, request, reply, answer, req)
      // A handler that answers through reply.send later returns nothing: returning the reply tells Fastify to wait.
      return result === undefined ? reply : result
    })
  }
}

function onRequestLookup(http: HttpCache, route: CompiledRoute) {
  return function groupcacheLookup(request: FastifyRequest, reply: FastifyReply, done: Done): void {
    const req = httpRequest(request)
    whenReady(http.begin(route, req), (answer) => {
      if (answer.kind === 'miss') {
        ;(request as Req)[kMiss] = answer
        // Registered here: a later hook may answer (a 401) and the handler never run.
        releaseOnClose(http, answer, reply)
        return done()
      }
      if (answer.kind === 'bypass') {
        reply.header('cache-status', answer.cacheStatus)
        setAll(reply, http.edgeHeaders(route, req, false, undefined))
        return done()
      }
      // Answering from a callback hook: send, and do not call done.
      serve(http, route, req, reply, answer)
    })
  }
}

/** The Fastify plugin: register it (awaited) before the routes it caches. */
export const groupcache = fp(plugin, { name: 'groupcache', fastify: '5.x' })
export default groupcache
