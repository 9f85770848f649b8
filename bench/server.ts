/**
 * One benchmark server, in its own process: `tsx bench/server.ts <scenario> <port> [redisPort]`.
 * Prints `ready` once it listens. Every scenario serves the same body.
 */
import express from 'express'
import apicache from 'apicache'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import groupcache, { RedisStore } from '../lib/index.js'
import { expressCache } from '../lib/express.js'

import { BODY, POST_GROUPS, POSTS } from './body.js'
const [scenario = '', portArg = '0', redisPort = '6379'] = process.argv.slice(2)
const port = Number(portArg)
const redis = () => new Redis({ host: '127.0.0.1', port: Number(redisPort) })
const slow = () => new Promise((resolve) => setTimeout(resolve, 2))

async function fastify(setup: (app: FastifyInstance) => Promise<void> | void): Promise<void> {
  const app = Fastify()
  await setup(app)
  await app.listen({ host: '127.0.0.1', port })
}

function expressApp(setup: (app: express.Express) => void): Promise<void> {
  const app = express()
  app.set('etag', false)
  setup(app)
  return new Promise((resolve) => app.listen(port, '127.0.0.1', () => resolve()))
}

const scenarios: Record<string, () => Promise<void>> = {
  // A bare route returning the same bytes: the ceiling for a memory hit.
  bare: () => fastify((app) => void app.get('/items', (_req, reply) => reply.type('application/json').send(BODY))),
  'memory-hit': () =>
    fastify(async (app) => {
      await app.register(groupcache)
      app.get('/items', { config: { cache: { group: 'items' } } }, (_req, reply) => reply.type('application/json').send(BODY))
    }),
  // The hand-written baseline for Redis: one GET per request in an onRequest hook.
  'redis-get-hook': () =>
    fastify(async (app) => {
      const client = redis()
      await client.set('bench:hand', BODY)
      app.addHook('onRequest', async (_req, reply) => {
        const cached = await client.getBuffer('bench:hand')
        if (cached) return reply.type('application/json').send(cached)
      })
      app.get('/items', (_req, reply) => reply.type('application/json').send(BODY))
    }),
  'redis-hit': () =>
    fastify(async (app) => {
      await app.register(groupcache, { store: new RedisStore({ client: redis() }), prefix: `bench${process.pid}` })
      app.get('/items', { config: { cache: { group: 'items' } } }, (_req, reply) => reply.type('application/json').send(BODY))
    }),
  // Param routes, two groups: /posts/:id with groups ['post:id', 'posts'].
  'bare-param': () => fastify((app) => void app.get('/posts/:id', (_req, reply) => reply.type('application/json').send(BODY))),
  // The same as memory-hit with hits answered in onRequest (lookupAt), for the price of serving them after every hook.
  'memory-hit-onrequest': () =>
    fastify(async (app) => {
      await app.register(groupcache, { lookupAt: 'onRequest' })
      app.get('/items', { config: { cache: { group: 'items' } } }, (_req, reply) => reply.type('application/json').send(BODY))
    }),
  'memory-hit-param': () =>
    fastify(async (app) => {
      await app.register(groupcache)
      app.get('/posts/:id', { config: { cache: POST_GROUPS } }, (_req, reply) => reply.type('application/json').send(BODY))
    }),
  // One GET per request, keyed by URL, in an onRequest hook: the hand-written floor of a Redis cache.
  'redis-get-hook-param': () =>
    fastify(async (app) => {
      const client = redis()
      for (let id = 1; id <= POSTS; id++) await client.set(`bench:hand:/posts/${id}`, BODY)
      app.addHook('onRequest', async (req, reply) => {
        const cached = await client.getBuffer(`bench:hand:${req.url}`)
        if (cached) return reply.type('application/json').send(cached)
      })
      app.get('/posts/:id', (_req, reply) => reply.type('application/json').send(BODY))
    }),
  'redis-hit-param': () =>
    fastify(async (app) => {
      await app.register(groupcache, { store: new RedisStore({ client: redis() }), prefix: `bench${process.pid}` })
      app.get('/posts/:id', { config: { cache: POST_GROUPS } }, (_req, reply) => reply.type('application/json').send(BODY))
    }),
  // The floor of any route-level Express cache: a route writing the same bytes with writeHead/end.
  'express-floor': () =>
    expressApp((app) => {
      const body = Buffer.from(BODY)
      app.get('/items', (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length })
        res.end(body)
      })
    }),
  'express-hit': () =>
    expressApp((app) => {
      const gc = expressCache()
      app.get('/items', gc.route({ group: 'items' }), (_req, res) => void res.type('application/json').send(BODY))
    }),
  // The same, with the route table: hits are answered before Express's router runs.
  'express-table-hit': () =>
    expressApp((app) => {
      const gc = expressCache()
      app.use(gc.middleware({ routes: { 'GET /items': { group: 'items' } } }))
      app.get('/items', (_req, res) => void res.type('application/json').send(BODY))
    }),
  'apicache-hit': () =>
    expressApp((app) => {
      app.get('/items', apicache.middleware('5 minutes'), (_req, res) => void res.type('application/json').send(BODY))
    }),
  // Misses: a 2 ms handler, every request to a new URL (the runner adds ?n=<counter>).
  'miss-uncached': () => fastify((app) => void app.get('/items', async (_req, reply) => (await slow(), reply.type('application/json').send(BODY)))),
  'miss-cached': () =>
    fastify(async (app) => {
      await app.register(groupcache)
      app.get('/items', { config: { cache: { group: 'items' } } }, async (_req, reply) => (await slow(), reply.type('application/json').send(BODY)))
    }),
  // 100 concurrent cold requests for one key: /runs tells how often the handler ran.
  coalesce: () =>
    fastify(async (app) => {
      let runs = 0
      await app.register(groupcache)
      app.get('/cold', { config: { cache: true } }, async () => {
        runs++
        await new Promise((resolve) => setTimeout(resolve, 50))
        return BODY
      })
      app.get('/runs', async () => ({ runs }))
    })
}

const start = scenarios[scenario]
if (start === undefined) {
  console.error(`unknown scenario ${scenario}; one of ${Object.keys(scenarios).join(', ')}`)
  process.exit(2)
}
// Exit cleanly on SIGINT/SIGTERM so `node --cpu-prof` writes its profile.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(0))
await start()
console.log('ready')
