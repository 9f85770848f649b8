import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import groupcache, { RedisStore } from '../lib/index.js'
import { startRedis, type RedisServer } from './helpers/redis.js'
import { until } from './helpers/faulty-store.js'

const STORED = 'groupcache; fwd=miss; stored'
const silent = { warn() {}, error() {}, debug() {} }

/** One "process" of the app: its own Fastify, its own Redis connection, the shared database. */
async function instance(t: Test, server: RedisServer, db: { v: number }, prefix: string, timeout = 200): Promise<FastifyInstance> {
  const client = server.client()
  const app = Fastify()
  await app.register(groupcache, { store: new RedisStore({ client }), prefix, timeout, logger: silent })
  app.get('/users/:userId', { config: { cache: { groups: ['user:userId'] } } }, async () => `v${db.v}`)
  app.put('/users/:userId', async (_req, reply) => {
    db.v++
    reply.bumpGroup('user:userId')
    return 'ok'
  })
  await app.ready()
  t.teardown(async () => {
    await app.close()
    client.disconnect()
  })
  return app
}

const get = async (app: FastifyInstance) => {
  const r = await app.inject('/users/1')
  return { status: r.statusCode, body: r.body, cache: r.headers['cache-status'] }
}

t.test('two instances on one Redis share entries, and a bump on one invalidates the other at once', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const db = { v: 0 }
  const a = await instance(t, server, db, 'shared')
  const b = await instance(t, server, db, 'shared')
  t.equal((await get(a)).cache, STORED)
  t.match((await get(b)).cache, /hit/, 'B is served the entry A stored')
  t.equal((await b.inject({ method: 'PUT', url: '/users/1' })).statusCode, 200)
  const fromA = await get(a)
  t.equal(fromA.cache, STORED, 'A misses right after B’s mutation answered')
  t.equal(fromA.body, 'v1')
})

t.test('deleting every version key, again and again, never serves an earlier generation', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const admin = server.client()
  t.teardown(() => admin.disconnect())
  const db = { v: 0 }
  const app = await instance(t, server, db, 'lost')
  for (let round = 0; round < 6; round++) {
    const first = await get(app)
    t.equal(first.body, `v${db.v}`, `round ${round}: current data`)
    t.match((await get(app)).cache, /hit/)
    if (round % 2 === 1) await app.inject({ method: 'PUT', url: '/users/1' })
    // The test may list keys; the library never does.
    const versionKeys = [...(await admin.keys('lost:v:*')), 'lost:epoch']
    t.ok((await admin.del(...versionKeys)) >= 2, `round ${round}: version keys deleted`)
    const after = await get(app)
    t.equal(after.cache, STORED, `round ${round}: a miss after the versions were lost`)
    t.equal(after.body, `v${db.v}`)
  }
})

t.test('a frozen server (SIGSTOP): requests are answered by their handlers, and a bump made meanwhile lands after SIGCONT', async (t) => {
  const server = await startRedis()
  t.teardown(async () => {
    server.thaw()
    await server.stop()
  })
  const db = { v: 0 }
  const a = await instance(t, server, db, 'frozen')
  const b = await instance(t, server, db, 'frozen')
  await get(a)
  t.match((await get(b)).cache, /hit/)

  server.freeze()
  const during = await get(a)
  t.equal(during.status, 200)
  t.equal(during.cache, 'groupcache; fwd=bypass; detail=store-timeout')
  const put = await a.inject({ method: 'PUT', url: '/users/1' })
  t.equal(put.statusCode, 200, 'the mutation is answered')
  t.equal(a.groupcache.stats().pendingBumps, 1, 'its bump is kept')
  const afterPut = await get(a)
  t.equal(afterPut.cache, 'groupcache; fwd=bypass; detail=pending-bump')
  t.equal(afterPut.body, 'v1')

  server.thaw()
  await until(() => a.groupcache.stats().pendingBumps === 0, 'the pending bump to land')
  const fromB = await get(b)
  t.equal(fromB.body, 'v1', 'the other instance never serves the entry from before the bump')
  t.equal(fromB.cache, STORED)
  t.match((await get(a)).cache, /hit/, 'A caches again')
})

t.test('a killed and restarted server: requests keep being answered, and caching resumes with no restart of the app', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const db = { v: 0 }
  const app = await instance(t, server, db, 'restart')
  t.equal((await get(app)).cache, STORED)
  await server.kill()
  const down = await get(app)
  t.equal(down.status, 200)
  t.match(down.cache, /^groupcache; fwd=bypass; detail=store-(error|timeout)$/)
  await server.start()
  let resumed = await get(app)
  const end = Date.now() + 15_000
  while (resumed.cache !== STORED && Date.now() < end) {
    await new Promise((resolve) => setTimeout(resolve, 100))
    resumed = await get(app)
  }
  t.equal(resumed.cache, STORED, 'stored again (the restarted server is empty)')
  t.match((await get(app)).cache, /hit/)
})
