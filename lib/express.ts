import type { NextFunction, Request, RequestHandler, Response } from 'express'
import { LRUCache } from 'lru-cache'
import type { GroupDef, GroupValues } from './core/groups.js'
import { GroupcacheError } from './errors.js'
import { compileTable, expressPatternParams } from './express-patterns.js'
import { cacheApi, type CacheApi } from './http/api.js'
import { whenReady, type Begin, type Miss, type ReadyResponse } from './http/http-cache.js'
import { createHttpCache, type GroupcacheOptions } from './http/options.js'
import type { CompiledRoute, RouteCacheOptions } from './http/route.js'

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace Express {
    interface Response {
      /**
       * Records a bump of a group, applied after the handler finishes and before
       * the response is written. Values default to `req.params`. Added by `gc.middleware()`.
       */
      bumpGroup(def: GroupDef, values?: GroupValues): this
    }
  }
}

export interface ExpressMiddlewareOptions {
  /** Routes cached before the router runs: `{ 'GET /users/:userId': { groups: ['user:userId'] } }` (path-to-regexp patterns). */
  routes?: Record<string, RouteCacheOptions | true>
}

export interface ExpressCache extends CacheApi {
  /** Adds `res.bumpGroup`, and with `routes`, caches the listed patterns. */
  middleware(options?: ExpressMiddlewareOptions): RequestHandler
  /** Route-level middleware: caches this route (or, with only `bumps`, declares its bumps). */
  route(options: RouteCacheOptions | true): RequestHandler
  /** Tries pending bumps once more and closes the store. */
  close(): Promise<void>
}

/** Per-response state: bumps to apply and the miss to finish before the response goes out. */
interface Pending {
  bumps: string[]
  miss: Miss | undefined
  /** The response has started going out: bumps recorded now are applied at once. */
  started: boolean
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
function serve(res: Response, ready: ReadyResponse): void {
  const headers: Record<string, string | string[]> = { ...ready.headers, 'cache-status': ready.cacheStatus }
  if (ready.age !== undefined) headers.age = ready.age
  if (ready.body !== undefined) headers['content-length'] = String(ready.body.length)
  res.writeHead(ready.status, headers)
  res.end(ready.body)
}

/**
 * The Express adapter: translates Express requests and responses for the
 * shared HTTP layer. Because bumps and the store decision must finish before
 * the first byte goes out, a response with either holds its first write/end
 * (and records writeHead into setHeader) until that async work is done.
 */
export function expressCache(options: GroupcacheOptions = {}): ExpressCache {
  const http = createHttpCache(options, undefined)
  const gens = http.gens

  function pendingOf(res: Res): Pending {
    let pending = res[kPending]
    if (pending === undefined) {
      pending = { bumps: [], miss: undefined, started: false }
      res[kPending] = pending
      hold(res, pending)
    }
    return pending
  }

  function hold(res: Res, pending: Pending): void {
    const { write, end, writeHead } = res
    let queue: (() => void)[] | undefined
    const restore = () => {
      res.write = write
      res.end = end
      res.writeHead = writeHead
    }
    const start = (body: Buffer | typeof STREAMED | undefined, first: () => void) => {
      pending.started = true
      queue = [first]
      void beforeFirstByte(res, pending, body).then(() => {
        const calls = queue as (() => void)[]
        queue = undefined
        restore()
        for (const call of calls) call()
      })
    }
    res.writeHead = function (this: Response, status: number, ...rest: unknown[]) {
      // Keep status and headers editable until the body goes out.
      this.statusCode = status
      if (typeof rest[0] === 'string') this.statusMessage = rest.shift() as string
      const headers = rest[0]
      if (Array.isArray(headers)) for (let i = 0; i + 1 < headers.length; i += 2) this.setHeader(String(headers[i]), headers[i + 1] as string)
      else if (headers !== null && typeof headers === 'object') for (const [k, v] of Object.entries(headers)) if (v !== undefined) this.setHeader(k, v as string)
      return this
    } as Response['writeHead']
    res.write = function (this: Response, ...args: unknown[]) {
      if (queue !== undefined) queue.push(() => (res.write as (...a: unknown[]) => boolean)(...args))
      else start(STREAMED, () => (write as (...a: unknown[]) => boolean).apply(res, args))
      return true
    } as Response['write']
    res.end = function (this: Response, ...args: unknown[]) {
      if (queue !== undefined) queue.push(() => (res.end as (...a: unknown[]) => Response)(...args))
      else start(bodyOf(args[0], args[1]), () => (end as (...a: unknown[]) => Response).apply(res, args))
      return res
    } as Response['end']
  }

  async function beforeFirstByte(res: Response, pending: Pending, body: Buffer | typeof STREAMED | undefined): Promise<void> {
    if (pending.bumps.length > 0) await gens.bumpKeys(pending.bumps.splice(0))
    if (pending.miss === undefined) return
    const finish = await http.finish(pending.miss, res.statusCode, res.getHeaders(), body)
    res.setHeader('cache-status', finish.cacheStatus)
    if (finish.etag !== undefined && !res.hasHeader('etag')) res.setHeader('etag', finish.etag)
  }

  function bumpGroup(this: Res, def: GroupDef, values?: GroupValues): Res {
    const key = http.bumpKey(def, values ?? (this.req.params as GroupValues), this.req)
    if (this.headersSent || this[kPending]?.started === true) void gens.bumpKeys([key])
    else pendingOf(this).bumps.push(key)
    return this
  }

  /** Runs a lookup and answers, or lets the request through to its handler. */
  function lookup(route: CompiledRoute, req: Request, res: Res, params: GroupValues, next: NextFunction): void {
    whenReady(http.begin(route, { method: req.method, url: req.originalUrl, headers: req.headers, params, raw: req }), (answer: Begin) => {
      if (answer.kind === 'serve') return serve(res, answer)
      if (answer.kind === 'bypass') {
        res.setHeader('cache-status', answer.cacheStatus)
      } else {
        pendingOf(res).miss = answer
        res.once('close', () => http.abandon(answer))
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
    close: () => gens.close(),

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

    route(routeOptions: RouteCacheOptions | true): RequestHandler {
      // Checks the options and group forms now; params are checked against the
      // route's pattern on its first request (Express does not tell a
      // middleware its route before then).
      const checked = http.compile({ pattern: '(route)', name: 'Express route', params: null, cacheable: true }, routeOptions)
      const byPattern = new LRUCache<string, CompiledRoute>({ max: COMPILED_PATTERNS_MAX })
      return function groupcacheRoute(req, res, next) {
        let route: CompiledRoute
        try {
          route = routeFor(byPattern, req, routeOptions)
        } catch (err) {
          return next(err)
        }
        if (route.bumps.length > 0) {
          try {
            pendingOf(res).bumps.push(...http.declaredBumps(route, req.params as GroupValues, req))
          } catch (err) {
            return next(err)
          }
        }
        if (!checked.cached) return next()
        lookup(route, req, res, req.params as GroupValues, next)
      }
    }
  }
}
