import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import express, { type RequestHandler } from 'express'
import Fastify from 'fastify'
import groupcache, { type BumpOptions, type GroupDef, type GroupValues, type GroupcacheOptions, type RouteCacheOptions } from '../../lib/index.js'
import type { CacheStats } from '../../lib/index.js'
import { expressCache } from '../../lib/express.js'
import { request, type HttpResult } from './http.js'

/** A framework-neutral request, as a test handler sees it. */
export interface TestRequest {
  params: Record<string, string>
  headers: Record<string, string | string[] | undefined>
  url: string
}

/** A framework-neutral response. `body` objects are sent as JSON. */
export interface TestResponse {
  status?: number
  headers?: Record<string, string | string[]>
  body?: string | Buffer | Record<string, unknown> | Readable
  /** Bumps the handler records (reply.bumpGroup / res.bumpGroup). */
  bumps?: [GroupDef, GroupValues?, BumpOptions?][]
}

export interface TestRoute {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE'
  path: string
  cache?: RouteCacheOptions | true
  handler: (req: TestRequest) => TestResponse | Promise<TestResponse>
}

/** What every adapter exposes as `app.groupcache` / `gc`. */
export interface CacheApi {
  bump(def: GroupDef, values?: GroupValues, options?: BumpOptions): Promise<boolean>
  bumpRoute(pattern: string, params?: GroupValues): Promise<boolean>
  clear(): Promise<boolean>
  stats(): CacheStats
}

export interface TestApp {
  request(method: string, path: string, headers?: Record<string, string>): Promise<HttpResult>
  api: CacheApi
  close(): Promise<void>
}

export type AppFactory = (options: GroupcacheOptions, routes: TestRoute[]) => Promise<TestApp>

export const fastifyApp: AppFactory = async (options, routes) => {
  const app = Fastify()
  await app.register(groupcache, options)
  for (const route of routes) {
    app.route({
      method: route.method,
      url: route.path,
      ...(route.cache === undefined ? {} : { config: { cache: route.cache } }),
      handler: async (req, reply) => {
        const res = await route.handler({ params: req.params as Record<string, string>, headers: req.headers, url: req.url })
        for (const [def, values, options] of res.bumps ?? []) reply.bumpGroup(def, values, options)
        reply.code(res.status ?? 200)
        for (const [name, value] of Object.entries(res.headers ?? {})) reply.header(name, value)
        return reply.send(res.body)
      }
    })
  }
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  return { request: (m, p, h) => request(base, m, p, h), api: app.groupcache, close: () => app.close() }
}

export const adapters: Record<string, AppFactory> = { fastify: fastifyApp }

export const expressApp: AppFactory = async (options, routes) => {
  const gc = expressCache(options)
  const app = express()
  app.use(gc.middleware())
  for (const route of routes) {
    const handlers: RequestHandler[] = route.cache === undefined ? [] : [gc.route(route.cache)]
    handlers.push(async (req, res) => {
      const out = await route.handler({ params: req.params as Record<string, string>, headers: req.headers, url: req.originalUrl })
      for (const [def, values, options] of out.bumps ?? []) res.bumpGroup(def, values, options)
      res.status(out.status ?? 200)
      for (const [name, value] of Object.entries(out.headers ?? {})) res.setHeader(name, value)
      const body = out.body
      if (body instanceof Readable) body.pipe(res)
      else if (body === undefined) res.end()
      else if (typeof body === 'string' || Buffer.isBuffer(body)) res.send(body)
      else res.json(body)
    })
    app[route.method.toLowerCase() as 'get'](route.path, ...handlers)
  }
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  const { port } = server.address() as AddressInfo
  return {
    request: (m, p, h) => request(`http://127.0.0.1:${port}`, m, p, h),
    api: gc,
    close: async () => {
      await new Promise((resolve) => server.close(resolve))
      await gc.close()
    }
  }
}

adapters.express = expressApp
