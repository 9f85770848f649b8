import Fastify from 'fastify'
import t from 'tap'
import groupcache from '../lib/index.js'
import { gate } from './helpers/matrix.js'
import { storeKits } from './helpers/stores.js'

const STORED = 'groupcache; fwd=miss; stored'
/** The real setImmediate, taken before the mocked clock replaces it: yielding with it lets socket I/O (Redis replies) through. */
const realImmediate = setImmediate
const tick = () => new Promise((resolve) => realImmediate(resolve))
let n = 0

for (const kit of await storeKits(t)) {
  t.test(`staleWhileRevalidate on ${kit.name}`, async (t) => {
    const app = Fastify()
    await app.register(groupcache, { store: kit.make(), prefix: `stale${process.pid}x${++n}` })
    let version = 1
    let release = gate()
    let slow = false
    app.get('/news', { config: { cache: { group: 'news', ttl: 10, staleWhileRevalidate: 30 } } }, async () => {
      const mine = version
      if (slow) await release.wait
      return `news v${mine}`
    })
    app.put('/news', async (_req, reply) => {
      version++
      reply.bumpGroup('news')
      return 'ok'
    })
    await app.ready()
    t.teardown(() => app.close())
    // The mocked clock moves Date.now (freshness is judged from it); the stale window keeps entries stored long enough in both stores.
    t.clock.enter()
    /** Immediates are mocked too: drive a request to its end by moving the clock a millisecond at a time. */
    const settle = async <T>(promise: Promise<T>): Promise<T> => {
      let done = false
      void promise.then(
        () => (done = true),
        () => (done = true)
      )
      for (let i = 0; i < 2000 && !done; i++) {
        t.clock.advance(1)
        await tick()
      }
      return promise
    }
    const get = async () => {
      const r = await settle(app.inject('/news'))
      return { body: r.body, cache: r.headers['cache-status'], age: r.headers.age }
    }
    /** Starts a request and drives the clock until it has been looked up (and so is waiting or leading). */
    const start = async (what: string) => {
      const before = app.groupcache.stats()
      const request = app.inject('/news')
      const lookedUp = () => {
        const now = app.groupcache.stats()
        return now.misses + now.hits > before.misses + before.hits
      }
      for (let i = 0; i < 1000 && !lookedUp(); i++) {
        t.clock.advance(1)
        await tick()
      }
      t.ok(lookedUp(), `${what} has been looked up`)
      // Wrapped: an async function returning the promise would wait for it.
      return { request }
    }
    const whileRevalidating = async () => {
      slow = true
      release = gate()
      version++
      return { leader: (await start('the revalidating request')).request }
    }

    t.equal((await get()).cache, STORED)
    t.clock.advance(12_000)
    const { leader } = await whileRevalidating()
    const during = await get()
    t.ok(during.body, 'answered while the revalidation is still under way')
    t.equal(during.body, 'news v1', 'an identical request during the revalidation gets the stale entry at once')
    t.equal(during.cache, 'groupcache; hit; ttl=-2', 'a negative ttl: served stale')
    t.equal(during.age, '12')
    release.open()
    const revalidated = await settle(leader)
    t.equal(revalidated.body, 'news v2', 'the revalidating request waited for the handler')
    t.equal(revalidated.headers['cache-status'], STORED)
    slow = false
    t.match((await get()).cache, /^groupcache; hit; ttl=(9|10)$/, 'fresh again')

    t.clock.advance(10_000 + 31_000)
    const { leader: late } = await whileRevalidating()
    const { request: past } = await start('a request past the stale window')
    release.open()
    t.equal((await settle(late)).body, 'news v3')
    t.equal((await settle(past)).headers['cache-status'], 'groupcache; fwd=miss; collapsed', 'past the stale window a request waits, coalesced')

    slow = false
    t.clock.advance(11_000)
    await settle(app.inject({ method: 'PUT', url: '/news' }))
    const { leader: afterBump } = await whileRevalidating()
    const { request: waiting } = await start('a request after the bump')
    release.open()
    t.equal((await settle(afterBump)).body, 'news v5')
    t.equal((await settle(waiting)).body, 'news v5', 'a bump orphans stale entries too: nothing from before it is served')
  })
}

t.test('staleWhileRevalidate must be seconds, 0 or more', async (t) => {
  const app = Fastify()
  await app.register(groupcache)
  // onRoute runs as the route is added, so the route call itself throws.
  t.throws(() => app.get('/x', { config: { cache: { staleWhileRevalidate: -1 } } }, async () => 'x'), {
    code: 'GC_INVALID_OPTION',
    message: /route GET \/x: option staleWhileRevalidate must be a number of seconds \(0 or more\), got -1/
  })
})
