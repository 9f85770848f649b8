import { STATUS_CODES } from 'node:http'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { LRUCache } from 'lru-cache'
import { graceOf, type BumpOptions } from './core/generations.js'
import type { GroupDef, GroupValues } from './core/groups.js'
import { GroupcacheError } from './errors.js'
import { compileTable, expressPatternParams } from './express-patterns.js'
import { cacheApi, type CacheApi } from './http/api.js'
import { mergeVary, type HeaderBag } from './http/entry.js'
import { applyRecordedBumps, whenReady, type Begin, type HttpRequest, type Miss, type ReadyResponse } from './http/http-cache.js'
import { CACHE_STATUS } from './http/cache-status.js'
import type { HeaderPair } from './cdn/headers.js'
import { createHttpCache, type GroupcacheOptions } from './http/options.js'
import type { CompiledRoute, RouteCacheOptions } from './http/route.js'

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Response {
      /**
       * Records a bump of a group, applied after the handler finishes and before
       * the response is written. Values default to `req.params`. Added by `gc.middleware()`.
       * With `{ grace }` (seconds) it is a soft bump: the old entries may answer,
       * stale, while one request per entry recomputes.
       */
      bumpGroup(def: GroupDef, values?: GroupValues, options?: BumpOptions): this
    }
  }
}

export interface ExpressMiddlewareOptions {
  /** Routes cached before the router runs: `{ 'GET /users/:userId': { groups: ['user:userId'] } }` (path-to-regexp patterns). */
  routes?: Record<string, RouteCacheOptions | true>
}

/**
 * What `gc.route()` returns: an Express route middleware, usable wherever a
 * `RequestHandler` is. Its request is typed `unknown` rather than `Request`
 * so that it takes no part in Express's inference of a route's params: in
 * `app.get('/users/:userId', gc.route(options), (req, res) => ...)` the
 * handler's `req.params.userId` is a `string`, as without it (a
 * `RequestHandler` there would widen every param to `string | string[]`).
 */
export type RouteMiddleware = (req: unknown, res: Response, next: NextFunction) => void

export interface ExpressCache extends CacheApi {
  /**
   * Adds `res.bumpGroup`, and with `routes`, caches the listed patterns. A hit
   * is answered here: mount it after compression, sessions, CORS and auth, which
   * then run on hits too.
   */
  middleware(options?: ExpressMiddlewareOptions): RequestHandler
  /**
   * Route-level middleware: caches this route (or, with only `bumps`, declares
   * its bumps). A hit is answered here, after the middleware mounted before it.
   * Its type leaves the params of the handlers mounted with it to Express's
   * inference from the path (see {@link RouteMiddleware}).
   */
  route(options: RouteCacheOptions | true): RouteMiddleware
  /** Tries pending bumps once more, closes the store, then the CDN purgers (sending what they hold). */
  close(): Promise<void>
}

/** Per-response state: bumps to apply and the miss to finish before the response goes out. */
interface Pending {
  bumps: string[]
  names: string[]
  /** Seconds of grace per bump (0: hard). */
  graces: number[]
  miss: Miss | undefined
  /** stale-if-error: written instead of the handler's failed response. */
  stale: ReadyResponse | undefined
  /** The request the miss is for (for its CDN headers). */
  request: HttpRequest | undefined
  /** Response headers when the handler started (set by middleware that runs on hits too). */
  before: HeaderBag | undefined
  /** The response has started going out: bumps recorded now are applied at once. */
  started: boolean
  /** Writes a stale answer in place of a handler that overran its time limit (staleIfErrorTimeout); set by hold(). */
  replace: ((stale: ReadyResponse) => void) | undefined
}

const kPending = Symbol('groupcache.pending')
type Res = Response & { [kPending]?: Pending }
/** A stand-in body for a streamed response: never stored or shared. */
const STREAMED = { streamed: true }
const COMPILED_PATTERNS_MAX = 1000

function isGetOrHead(method: string): boolean {
  return method === 'GET' || method === 'HEAD'
}

function bodyOf(chunk: unknown, encoding: unknown): Buffer | undefined {
  if (chunk === undefined || chunk === null || typeof chunk === 'function') return undefined
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
  const bytes = chunk as Uint8Array
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/** Writes a hit, a 304 or a collapsed response, without Express's send. */
function serve(res: Response, ready: ReadyResponse, edge: readonly HeaderPair[] | undefined): void {
  const stored = ready.headers
  const headers: Record<string, string | string[]> = { ...stored, 'cache-status': ready.cacheStatus }
  if (ready.age !== undefined) headers.age = ready.age
  if (edge !== undefined) for (const [name, value] of edge) headers[name] = value
  if (ready.body !== undefined) headers['content-length'] = String(ready.body.length)
  // The handler's Vary tokens join those middleware set on this request (CORS's Origin).
  if (stored.vary !== undefined && res.hasHeader('vary')) headers.vary = mergeVary(res.getHeader('vary'), stored.vary)
  // The reason phrase goes with the status written: the handler's (res.status(503), an error handler's
  // "Internal Server Error") may already be on the response when a stale or cached answer replaces it.
  res.writeHead(ready.status, STATUS_CODES[ready.status] ?? 'unknown', headers)
  res.end(ready.body)
}

/** A write or end after a stale answer went out in the handler's place: its callback still runs, as if written. */
function dropWrite(args: unknown[]): true {
  const callback = args.find((a) => typeof a === 'function') as (() => void) | undefined
  if (callback !== undefined) process.nextTick(callback)
  return true
}

/** Node's ServerResponse method that commits the header block: shadowed while probing. */
type Probed = Response & { _storeHeader?: () => void }
function noop(): void {}

/**
 * What the layer is told was already there when the handler started: headers
 * middleware set before it, plus those writeHead-time middleware (express-session,
 * compression) added or changed, since those run again on every hit. Except
 * `Content-Encoding`, which goes with the stored body, and `Vary`: a token added
 * at writeHead time (compression's Accept-Encoding) is keyed on, like the handler's.
 */
function recomputedOnHits(before: HeaderBag, handlerEnd: HeaderBag, written: HeaderBag): HeaderBag {
  const out: Record<string, HeaderBag[string]> = { ...before }
  for (const name of Object.keys(written)) {
    if (name !== 'vary' && name !== 'content-encoding' && written[name] !== handlerEnd[name]) out[name] = written[name]
  }
  return out
}

const brotliQuality = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } }
/** Codings a writeHead-time middleware may pick (those of `compression`), made again for the stored variant. */
const ENCODERS: Record<string, (body: Buffer) => Promise<Buffer>> = {
  gzip: promisify(zlib.gzip),
  deflate: promisify(zlib.deflate),
  br: (body) => promisify(zlib.brotliCompress)(body, brotliQuality)
}

/**
 * The body as the client receives it. When a middleware that runs on hits too
 * (compression) encodes the response at writeHead time, the held body is the
 * handler's: it is encoded again here, so the entry is the variant this
 * client's Accept-Encoding selects and a hit is not compressed again (the
 * middleware leaves an encoded body alone). A coding not known here: not stored.
 */
async function writtenBody(body: Buffer | undefined, handlerEnd: HeaderBag, written: HeaderBag): Promise<Buffer | undefined | typeof STREAMED> {
  const coding = written['content-encoding']
  if (coding === undefined || coding === handlerEnd['content-encoding']) return body
  const encode = ENCODERS[String(coding).toLowerCase()]
  return encode === undefined ? STREAMED : encode(body ?? Buffer.alloc(0))
}

/**
 * The Express adapter: translates Express requests and responses for the
 * shared HTTP layer. Because bumps and the store decision must finish before
 * the first byte goes out, a response with either holds its first write/end
 * (and records writeHead into setHeader) until that async work is done. The
 * decision is made on the headers actually written: writeHead-time middleware
 * (on-headers) is run first, see hold().
 */
export function expressCache(options: GroupcacheOptions = {}): ExpressCache {
  const http = createHttpCache(options, undefined)
  const gens = http.gens

  function pendingOf(res: Res): Pending {
    let pending = res[kPending]
    if (pending === undefined) {
      pending = { bumps: [], names: [], graces: [], miss: undefined, stale: undefined, request: undefined, before: undefined, started: false, replace: undefined }
      res[kPending] = pending
      hold(res, pending)
    }
    return pending
  }

  /**
   * Holds the first write/end until bumps and the store decision are done.
   * The wrappers then stay as pass-throughs rather than being restored:
   * middleware mounted after this point may have wrapped them in turn.
   */
  function hold(res: Res, pending: Pending): void {
    const { write, end, writeHead } = res
    let queue: (() => void)[] | undefined
    let released = false
    let probing = false
    /** A stale entry answered in the handler's place: whatever the handler writes now goes nowhere. */
    let dropped = false
    const release = () => {
      released = true
      const calls = queue as (() => void)[]
      queue = undefined
      const stale = pending.stale
      if (stale === undefined) {
        for (const call of calls) call()
        return
      }
      // stale-if-error: the held response is dropped (it was whole: nothing of it went out) and the stale entry is written as a hit would be.
      for (const name of res.getHeaderNames()) if ((pending.before as HeaderBag)[name] === undefined) res.removeHeader(name)
      // Not marked cacheable for a CDN: a stale answer is for this request only.
      serve(res, stale, http.edgeHeaders((pending.miss as Miss).route, pending.request as HttpRequest, false, stale.headers['cache-control']))
    }
    /**
     * Runs the writeHead-time middleware now (on-headers listeners: the
     * session cookie, compression's Content-Encoding) and stops Node's
     * writeHead just before it commits the header block, so the store
     * decision sees the headers actually written while they can still change.
     */
    const probe = () => {
      const raw = res as Probed
      raw._storeHeader = noop
      probing = true
      try {
        res.writeHead(res.statusCode)
      } finally {
        probing = false
        delete raw._storeHeader
      }
    }
    pending.replace = (stale) => {
      const miss = pending.miss as Miss
      // The layer asks only before the handler began answering (start() says so): nothing of its response is held.
      for (const name of res.getHeaderNames()) if ((pending.before as HeaderBag)[name] === undefined) res.removeHeader(name)
      released = true
      serve(res, stale, http.edgeHeaders(miss.route, pending.request as HttpRequest, false, stale.headers['cache-control']))
      dropped = true
      // Express's res.send and res.json set headers first: on a response already sent, Node would throw ERR_HTTP_HEADERS_SENT.
      const ignore = function (this: Response): Response {
        return this
      }
      Object.assign(res, { setHeader: ignore, removeHeader: ignore, appendHeader: ignore })
    }
    const start = (body: Buffer | typeof STREAMED | undefined, first: () => void) => {
      pending.started = true
      if (pending.miss !== undefined) http.answering(pending.miss)
      queue = [first]
      void beforeFirstByte(res, pending, body, probe).then(release, (err: unknown) => {
        // A writeHead listener threw while probing: what it meant to add is unknown, so nothing is stored.
        if (pending.miss !== undefined) http.abandon(pending.miss)
        gens.logger.warn({ err }, 'groupcache: a writeHead listener failed; response served uncached')
        release()
      })
    }
    res.writeHead = function (this: Response, ...args: unknown[]) {
      if (dropped) return this
      if (released) return (writeHead as (...a: unknown[]) => Response).apply(this, args)
      // Keep status and headers editable until the body goes out.
      this.statusCode = args[0] as number
      if (typeof args[1] === 'string') this.statusMessage = args.splice(1, 1)[0] as string
      const headers = args[1]
      if (Array.isArray(headers)) for (let i = 0; i + 1 < headers.length; i += 2) this.setHeader(String(headers[i]), headers[i + 1] as string)
      else if (headers !== null && typeof headers === 'object') for (const [k, v] of Object.entries(headers)) if (v !== undefined) this.setHeader(k, v as string)
      // While probing, the middleware beneath runs its listeners.
      return probing ? writeHead.call(this, this.statusCode) : this
    } as Response['writeHead']
    res.write = function (this: Response, ...args: unknown[]) {
      if (dropped) return dropWrite(args)
      if (released) return (write as (...a: unknown[]) => boolean).apply(this, args)
      const call = () => (write as (...a: unknown[]) => boolean).apply(res, args)
      if (queue !== undefined) queue.push(call)
      else start(STREAMED, call)
      return true
    } as Response['write']
    res.end = function (this: Response, ...args: unknown[]) {
      if (dropped) {
        dropWrite(args)
        http.late(pending.miss as Miss)
        return res
      }
      if (released) return (end as (...a: unknown[]) => Response).apply(this, args)
      const call = () => (end as (...a: unknown[]) => Response).apply(res, args)
      if (queue !== undefined) queue.push(call)
      else start(bodyOf(args[0], args[1]), call)
      return res
    } as Response['end']
  }

  async function beforeFirstByte(res: Response, pending: Pending, body: Buffer | typeof STREAMED | undefined, probe: () => void): Promise<void> {
    if (pending.bumps.length > 0) {
      const names = pending.names.splice(0)
      const landed = await applyRecordedBumps(gens, pending.bumps.splice(0), names, pending.graces.splice(0))
      // Cache-Group-Invalidation (and, with awaitPurges, the purges) only once the bump landed.
      const invalidation = http.edge === undefined ? undefined : await http.edge.afterBump(names, landed)
      if (invalidation !== undefined) res.setHeader(invalidation[0], invalidation[1])
    }
    const { miss } = pending
    if (miss === undefined) return
    let headers: HeaderBag = res.getHeaders()
    let before = pending.before
    let stored: Buffer | undefined | typeof STREAMED = body
    if (body !== STREAMED && miss.storable) {
      const handlerEnd = headers
      probe()
      headers = res.getHeaders()
      before = recomputedOnHits(before as HeaderBag, handlerEnd, headers)
      // What a stale-if-error answer keeps, as a hit would have it (a session cookie set at writeHead time).
      pending.before = before
      // Too big before encoding: the layer says so without the work of encoding it.
      const bytes = body as Buffer | undefined
      if (bytes === undefined || bytes.length <= miss.route.maxEntryBytes) stored = await writtenBody(bytes, handlerEnd, headers)
    }
    const finish = await http.finish(miss, res.statusCode, headers, stored, before)
    pending.stale = finish.stale
    res.setHeader('cache-status', finish.cacheStatus)
    if (finish.etag !== undefined && !res.hasHeader('etag')) res.setHeader('etag', finish.etag)
    // Set after the entry was made: never stored.
    const kept = finish.cacheStatus === CACHE_STATUS.stored
    for (const [name, value] of http.edgeHeaders(miss.route, pending.request as HttpRequest, kept, headers['cache-control'])) res.setHeader(name, value)
  }

  function bumpGroup(this: Res, def: GroupDef, values?: GroupValues, options?: BumpOptions): Res {
    const { key, name } = http.bumpTarget(def, values ?? (this.req.params as GroupValues), this.req)
    const grace = graceOf(options)
    if (this.headersSent || this[kPending]?.started === true) void applyRecordedBumps(gens, [key], [name], [grace])
    else {
      const pending = pendingOf(this)
      pending.bumps.push(key)
      pending.names.push(name)
      pending.graces.push(grace)
    }
    return this
  }

  /** Runs a lookup and answers, or lets the request through to its handler. */
  function lookup(route: CompiledRoute, req: Request, res: Res, params: GroupValues, next: NextFunction): void {
    const url = req.originalUrl
    // The query as the app's query parser hands it to the handler (req.query parses on each read).
    const query = route.query === false || !url.includes('?') ? undefined : (req.query as unknown)
    // req.host reads X-Forwarded-Host when `trust proxy` allows it; without that header it is the Host header.
    const host = req.headers['x-forwarded-host'] === undefined ? req.headers.host : req.host
    const request: HttpRequest = { method: req.method, url, headers: req.headers, params, raw: req, host, query }
    whenReady(http.begin(route, request), (answer: Begin) => {
      if (answer.kind === 'serve') {
        // Guarded: without the cdn option a hit pays nothing for it.
        return serve(res, answer, http.edge === undefined ? undefined : http.edgeHeaders(route, request, true, answer.headers['cache-control'] ?? res.getHeader('cache-control')))
      }
      if (answer.kind === 'bypass') {
        res.setHeader('cache-status', answer.cacheStatus)
        for (const [name, value] of http.edgeHeaders(route, request, false, undefined)) res.setHeader(name, value)
      } else {
        const pending = pendingOf(res)
        pending.miss = answer
        pending.request = request
        pending.before = res.getHeaders()
        res.once('close', () => http.abandon(answer))
        http.limit(answer, pending.replace as (stale: ReadyResponse) => void)
      }
      next()
    })
  }

  /**
   * Compiles a route-level config against the pattern of the route it serves
   * (one memo per `route()` call). A router mounted on a path with params has
   * concrete values in `req.baseUrl`, hence the bound on the memo.
   */
  function routeFor(byPattern: LRUCache<string, CompiledRoute>, req: Request, config: unknown): CompiledRoute {
    if (req.route === undefined) {
      throw new GroupcacheError('GC_INVALID_PATTERN', 'groupcache: gc.route() goes on a route: app.get(path, gc.route(options), handler); to cache before the router, use gc.middleware({ routes })')
    }
    const path = req.route.path as unknown
    const pattern = req.baseUrl + String(path)
    let route = byPattern.get(pattern)
    if (route === undefined) {
      // An array of paths (or a RegExp) has no single pattern to parse: its params are the matched ones.
      const params = typeof path === 'string' ? expressPatternParams(pattern) : Object.keys(req.params)
      route = http.compile({ pattern, name: `${req.method} ${pattern}`, params, cacheable: true }, config)
      byPattern.set(pattern, route)
    }
    return route
  }

  return {
    ...cacheApi(http),
    close: () => http.close(),

    middleware(middlewareOptions: ExpressMiddlewareOptions = {}): RequestHandler {
      const table = compileTable(middlewareOptions.routes ?? {}).map((entry) => ({
        entry,
        route: http.compile({ pattern: entry.pattern, name: `GET ${entry.pattern}`, params: entry.params, cacheable: true }, entry.config)
      }))
      return function groupcacheMiddleware(req, res, next) {
        res.bumpGroup = bumpGroup
        if (table.length === 0 || !isGetOrHead(req.method)) return next()
        for (const { entry, route } of table) {
          const params = entry.match(req.path)
          if (params !== undefined) return lookup(route, req, res, params, next)
        }
        next()
      }
    },

    route(routeOptions: RouteCacheOptions | true): RouteMiddleware {
      // Checks the options and group forms now; params are checked against the
      // route's pattern on its first request (Express does not tell a
      // middleware its route before then).
      // A check only: it must not take a row of the bounded per-route stats table (maxRouteStats).
      const checked = http.compile({ pattern: '(route)', name: 'Express route', params: null, cacheable: true }, routeOptions, false)
      // Its pattern is known at its first request only: until then bumpRoute() cannot tell it from a mistyped one.
      if (checked.cached) http.patternsLearnedLate()
      const byPattern = new LRUCache<string, CompiledRoute>({ max: COMPILED_PATTERNS_MAX })
      const groupcacheRoute: RequestHandler = function (req, res, next) {
        let route: CompiledRoute
        try {
          route = routeFor(byPattern, req, routeOptions)
        } catch (err) {
          return next(err)
        }
        if (route.bumps.length > 0) {
          let targets: { key: string; name: string }[]
          try {
            targets = http.declaredBumpTargets(route, req.params as GroupValues, req)
          } catch (err) {
            return next(err)
          }
          const pending = pendingOf(res)
          for (const { key, name } of targets) {
            pending.bumps.push(key)
            pending.names.push(name)
            pending.graces.push(0)
          }
        }
        if (!checked.cached) return next()
        lookup(route, req, res, req.params as GroupValues, next)
      }
      // Express calls it with its Request: the type only keeps it out of the params inference of the handlers after it.
      return groupcacheRoute as RouteMiddleware
    }
  }
}
