import { Readable } from 'node:stream'
import Fastify from 'fastify'
import groupcache, { type GroupDef, type GroupValues, type GroupcacheOptions, type RouteCacheOptions } from '../../lib/index.js'
import type { CacheStats } from '../../lib/index.js'
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
  bumps?: [GroupDef, GroupValues?][]
}

export interface TestRoute {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE'
  path: string
  cache?: RouteCacheOptions | true
  handler: (req: TestRequest) => TestResponse | Promise<TestResponse>
}

/** What every adapter exposes as `app.groupcache` / `gc`. */
export interface CacheApi {
  bump(def: GroupDef, values?: GroupValues): Promise<boolean>
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
        for (const [def, values] of res.bumps ?? []) reply.bumpGroup(def, values)
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
