import { request as httpRequest, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import express, { type Response } from 'express'
import Fastify, { type FastifyReply } from 'fastify'
import t, { type Test } from 'tap'
import groupcache, { MemoryStore, type GroupcacheOptions, type GroupcacheStats } from '../lib/index.js'
import { expressCache } from '../lib/express.js'
import { cacheMetrics } from '../example-app/metrics.js'
import { gate } from './helpers/matrix.js'
import { recordChannels } from './helpers/observe.js'

/**
 * A stale entry answering in a handler's place (stale-if-error: the handler
 * threw or answered 5xx; handler-timeout: it overran staleIfErrorTimeout), on
 * both adapters, through a real HTTP client reading the raw status line:
 * - the reason phrase is the one of the status written (the stored entry's),
 *   never the one the failed response had set (`200 Internal Server Error`);
 * - it counts as the route's `stale`, not as a miss, in stats(), and the store
 *   channel says so (`stored: false`, reason `stale-if-error` /
 *   `handler-timeout`), which the example's Prometheus metrics count.
 */

// Express's final handler prints the stack of every error it answers, except under NODE_ENV=test.
process.env.NODE_ENV = 'test'
/** The real setImmediate, taken before the mocked clock replaces it: yielding with it lets socket I/O through. */
const realImmediate = setImmediate
const tick = () => new Promise((resolve) => realImmediate(resolve))

interface Raw {
  status: number
  /** The reason phrase of the status line, as received. */
  reason: string
  headers: Record<string, string | string[] | undefined>
  body: string
}

function get(base: string, path: string): Promise<Raw> {
  const url = new URL(path, base)
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, headers: { connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? '', headers: res.headers, body: Buffer.concat(chunks).toString() }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}

/** How the handler of /feed behaves on its next run. */
type Mode = 'ok' | 'throw' | '503' | 'hang'

interface Setup {
  base: string
  stats(): GroupcacheStats
  close(): Promise<void>
}

const OPTIONS = { staleIfError: 600, staleIfErrorTimeout: 0.5, timeout: 600_000 } satisfies GroupcacheOptions
const ROUTES = { feed: { group: 'feed', ttl: 10 }, odd: { group: 'odd', ttl: 10, statuses: [299] } } as const

/** Fastify: the failed response is set the Fastify way (reply.code, a thrown error). */
async function fastifyApp(options: GroupcacheOptions, mode: () => Mode, hung: Promise<void>): Promise<Setup> {
  const app = Fastify()
  await app.register(groupcache, { ...OPTIONS, ...options })
  app.get('/feed', { config: { cache: ROUTES.feed } }, async (_request, reply: FastifyReply) => {
    const now = mode()
    if (now === 'throw') throw new Error('origin down (test)')
    if (now === '503') return reply.code(503).send('unavailable')
    if (now === 'hang') {
      reply.code(503)
      await hung
      return 'late'
    }
    return reply.type('text/plain').send('feed')
  })
  app.get('/odd', { config: { cache: ROUTES.odd } }, async (_request, reply) => reply.code(299).send('odd'))
  const base = await app.listen({ host: '127.0.0.1', port: 0 })
  return { base, stats: () => app.groupcache.stats(), close: () => app.close() }
}

/** Express: the failed response sets its reason phrase (res.status(503), writeHead(503, 'Down'), the final handler's "Internal Server Error"). */
async function expressApp(options: GroupcacheOptions, mode: () => Mode, hung: Promise<void>): Promise<Setup> {
  const gc = expressCache({ ...OPTIONS, ...options })
  const app = express()
  app.use(gc.middleware())
  app.get('/feed', gc.route(ROUTES.feed), async (_req, res: Response) => {
    const now = mode()
    if (now === 'throw') throw new Error('origin down (test)')
    if (now === '503') return void res.status(503).send('unavailable')
    if (now === 'hang') {
      res.writeHead(503, 'Down')
      await hung
      return void res.end('late')
    }
    res.type('text/plain').send('feed')
  })
  app.get('/odd', gc.route(ROUTES.odd), (_req, res) => void res.status(299).send('odd'))
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s))
  })
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stats: () => gc.stats(),
    close: async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      await gc.close()
    }
  }
}

let counter = 0

for (const [adapter, make] of [['fastify', fastifyApp], ['express', expressApp]] as const) {
  t.test(adapter, async (t: Test) => {
    const prefix = `stale${process.pid}x${++counter}`
    const seen = recordChannels(t, prefix)
    const metrics = cacheMetrics(prefix)
    t.teardown(() => metrics.close())
    let mode: Mode = 'ok'
    const hung = gate()
    const app = await make({ store: new MemoryStore(), prefix }, () => mode, hung.wait)
    t.teardown(async () => {
      hung.open()
      await app.close()
    })
    t.clock.enter()
    /** Timers are mocked too: drive a request to its end by moving the clock a millisecond at a time. */
    const drive = async (path: string): Promise<Raw> => {
      let done = false
      const pending = get(app.base, path).finally(() => (done = true))
      for (let i = 0; i < 5000 && !done; i++) {
        t.clock.advance(1)
        await tick()
      }
      return pending
    }
    const route = 'GET /feed'

    const first = await drive('/feed')
    t.match(first, { status: 200, reason: 'OK', body: 'feed', headers: { 'cache-status': 'groupcache; fwd=miss; stored' } })
    t.clock.advance(15_000)

    const answers: [Mode, RegExp][] = [
      ['throw', /detail=stale-if-error$/],
      ['503', /fwd-status=503; .*detail=stale-if-error$/],
      ['hang', /detail=handler-timeout$/]
    ]
    for (const [failure, cacheStatus] of answers) {
      mode = failure
      const stale = await drive('/feed')
      t.match(stale, { status: 200, body: 'feed', headers: { 'cache-status': cacheStatus } }, `${failure}: the stale entry answers`)
      t.equal(stale.reason, 'OK', `${failure}: the reason phrase of the status written, 200`)
    }

    const stats = app.stats()
    t.match(stats.routes[route], { hits: 0, stale: 3, misses: 1, stored: 1, notStored: { 'stale-if-error': 2, 'handler-timeout': 1 }, hitRatio: 3 / 4 }, 'stale answers count as stale, not as misses')
    t.match(stats, { hits: 3, misses: 1, notStored: { 'stale-if-error': 2, 'handler-timeout': 1 } })
    t.same(
      seen.lookups.map((lookup) => lookup.outcome),
      ['miss', 'miss', 'miss', 'miss'],
      'the lookup trace answered each as a miss when its handler started'
    )
    t.same(
      seen.stores.map((message) => (message.stored ? 'stored' : message.reason)),
      ['stored', 'stale-if-error', 'stale-if-error', 'handler-timeout'],
      'the store channel says what became of each'
    )
    const text = await metrics.text()
    t.match(text, /groupcache_not_stored_total\{route="GET \/feed",reason="stale-if-error"\} 2/, 'counted by the example metrics')
    t.match(text, /groupcache_not_stored_total\{route="GET \/feed",reason="handler-timeout"\} 1/)

    // A status without a standard phrase: the one Node gives it, on the miss and on the hit alike.
    const odd = await drive('/odd')
    t.match(odd, { status: 299, headers: { 'cache-status': 'groupcache; fwd=miss; stored' } })
    const oddHit = await drive('/odd')
    t.match(oddHit, { status: 299, reason: odd.reason, body: 'odd', headers: { 'cache-status': /^groupcache; hit/ } })
  })
}
