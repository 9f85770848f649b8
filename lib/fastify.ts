import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { GroupDef, GroupValues } from './core/groups.js'
import { fastifyRouteParams } from './fastify-params.js'
import { cacheApi, type CacheApi } from './http/api.js'
import { whenReady, type HttpCache, type Miss } from './http/http-cache.js'
import { createHttpCache, type GroupcacheOptions } from './http/options.js'
import type { CompiledRoute, RouteCacheOptions } from './http/route.js'

/** `app.groupcache` */
export type GroupcacheDecorator = CacheApi

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache this route's GET/HEAD responses, or declare its bumps (see RouteCacheOptions). */
    cache?: boolean | RouteCacheOptions
  }
  interface FastifyReply {
    /**
     * Records a bump of a group, applied after the handler finishes and before
     * the response is written. Values default to the request's params.
     */
    bumpGroup(def: GroupDef, values?: GroupValues): FastifyReply
  }
  interface FastifyInstance {
    groupcache: GroupcacheDecorator
  }
}

const kMiss = Symbol('groupcache.miss')
const kBumps = Symbol('groupcache.bumps')

type Req = FastifyRequest & { [kMiss]: Miss | null }
type Rep = FastifyReply & { [kBumps]: string[] | null }

function addHook<K extends 'onRequest' | 'onSend'>(routeOptions: RouteOptions, name: K, hook: unknown): void {
  const existing = routeOptions[name] as unknown
  ;(routeOptions as unknown as Record<string, unknown[]>)[name] = existing === undefined ? [hook] : Array.isArray(existing) ? [...existing, hook] : [existing, hook]
}

const plugin: FastifyPluginAsync<GroupcacheOptions> = async (fastify, options) => {
  const http = createHttpCache(options, fastify.log)
  const gens = http.gens

  fastify.decorate('groupcache', cacheApi(http))
  fastify.decorateRequest(kMiss, null)
  fastify.decorateReply(kBumps, null)
  fastify.decorateReply('bumpGroup', function bumpGroup(this: FastifyReply, def: GroupDef, values?: GroupValues) {
    const key = http.bumpKey(def, values ?? (this.request.params as GroupValues), this.request)
    const reply = this as Rep
    if (reply.sent) void gens.bumpKeys([key])
    else (reply[kBumps] ??= []).push(key)
    return this
  })

  // Applies the bumps a handler recorded (and the route declared) after the
  // handler finished and before the response is written: a client that got
  // the mutation's response never reads the old data afterwards. bumpKeys
  // never rejects: a bump the store refuses is kept and retried.
  fastify.addHook('onSend', function applyBumps(_request, reply, payload, done) {
    const keys = (reply as Rep)[kBumps]
    if (keys === null) return done(null, payload)
    ;(reply as Rep)[kBumps] = null
    void gens.bumpKeys(keys).then(() => done(null, payload))
  })

  fastify.addHook('onRoute', (routeOptions) => {
    const config = routeOptions.config?.cache
    if (config === undefined || config === false) return
    const methods = ([] as string[]).concat(routeOptions.method)
    const params = fastifyRouteParams(routeOptions.url)
    const route = http.compile(
      {
        pattern: routeOptions.url,
        name: `${methods.join(',')} ${routeOptions.url}`,
        params,
        cacheable: methods.some((m) => m === 'GET' || m === 'HEAD')
      },
      config
    )
    if (route.bumps.length > 0) {
      addHook(routeOptions, 'onRequest', declaredBumpsHook(http, route))
    }
    if (route.cached) {
      addHook(routeOptions, 'onRequest', lookupHook(http, route))
      addHook(routeOptions, 'onSend', storeHook(http))
    }
  })

  fastify.addHook('onClose', () => gens.close())
}

function declaredBumpsHook(http: HttpCache, route: CompiledRoute) {
  // Resolved before the handler runs, so a group that cannot be resolved fails the request before any mutation.
  return function recordDeclaredBumps(request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void): void {
    const keys = http.declaredBumps(route, request.params as GroupValues, request)
    ;((reply as Rep)[kBumps] ??= []).push(...keys)
    done()
  }
}

type Done = (err?: Error | null) => void

function lookupHook(http: HttpCache, route: CompiledRoute) {
  // Callback style, not async: with the memory store a hit is answered with no promise at all.
  return function groupcacheLookup(request: FastifyRequest, reply: FastifyReply, done: Done): void {
    const begin = http.begin(route, { method: request.method, url: request.url, headers: request.headers, params: request.params as GroupValues, raw: request })
    whenReady(begin, (answer) => {
      if (answer.kind === 'miss') {
        ;(request as Req)[kMiss] = answer
        // 'close' comes after the response is sent or when the client goes away first;
        // either way, requests waiting on this miss must not wait longer.
        reply.raw.once('close', () => http.abandon(answer))
        return done()
      }
      reply.header('cache-status', answer.cacheStatus)
      if (answer.kind === 'bypass') return done()
      reply.code(answer.status).headers(answer.headers)
      if (answer.age !== undefined) reply.header('age', answer.age)
      // Answering from a callback hook: send, and do not call done.
      reply.send(answer.body)
    })
  }
}

function storeHook(http: HttpCache) {
  return function groupcacheStore(request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, payload: unknown) => void): void {
    const miss = (request as Req)[kMiss]
    if (miss === null) return done(null, payload)
    void http.finish(miss, reply.statusCode, reply.getHeaders(), payload).then((finish) => {
      reply.header('cache-status', finish.cacheStatus)
      if (finish.etag !== undefined && !reply.hasHeader('etag')) reply.header('etag', finish.etag)
      done(null, payload)
    })
  }
}

/** The Fastify plugin: register it before the routes it caches. */
export const groupcache = fp(plugin, { name: 'groupcache', fastify: '5.x' })
export default groupcache
