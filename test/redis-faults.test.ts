import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import { GenerationalCache, RedisStore } from '../lib/index.js'
import { Cluster, type Redis } from 'ioredis'
import { freePort, startRedis, type RedisServer } from './helpers/redis.js'
import { until } from './helpers/faulty-store.js'
import { redisApp } from './helpers/redis-app.js'

const STORED = 'groupcache; fwd=miss; stored'
const silent = { warn() {}, error() {}, debug() {} }

/** One "process" of the app: its own Fastify, its own Redis connection, the shared database. */
function instance(t: Test, server: RedisServer, db: { v: number }, prefix: string, timeout = 200): Promise<FastifyInstance> {
  return redisApp(t, server.client(), db, { prefix, timeout })
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

/** A logger that keeps what it is given. */
function recorder() {
  const lines: { level: string; obj: Record<string, unknown>; msg: string | undefined }[] = []
  const at = (level: string) => (obj: unknown, msg?: string) => void lines.push({ level, obj: obj as Record<string, unknown>, msg })
  return { lines, logger: { warn: at('warn'), error: at('error'), info: at('info') } }
}

/** Collects what is written to console.error (where ioredis prints "[ioredis] Unhandled error event"). */
function stderrSpy(t: Test): unknown[][] {
  const seen: unknown[][] = []
  const { error } = console
  console.error = (...args: unknown[]) => void seen.push(args)
  t.teardown(() => (console.error = error))
  return seen
}

t.test('an owned { url } connection reports its errors through the cache logger, rate-limited, never as an unhandled error event', async (t) => {
  const stderr = stderrSpy(t)
  const port = await freePort()
  const { lines, logger } = recorder()
  const cache = new GenerationalCache({ store: new RedisStore({ url: `redis://127.0.0.1:${port}`, redisOptions: { retryStrategy: () => 10 } }), logger, timeout: 100 })
  await t.rejects(async () => cache.lookup([], 'rk'))
  await new Promise((resolve) => setTimeout(resolve, 300))
  const connection = lines.filter((l) => l.level === 'error')
  t.equal(connection.length, 1, 'one line for many refused reconnections')
  t.match(connection[0], { obj: { err: { code: 'ECONNREFUSED' } }, msg: /store connection failed/ })
  t.ok(cache.getStats().errors > 3, 'every connection error is counted')
  t.same(stderr.filter((args) => /Unhandled error event/.test(String(args[0]))), [], 'nothing unhandled')
  await cache.close()
})

t.test('an owned connection with no cache on it yet logs its errors to the console, rate-limited', async (t) => {
  const stderr = stderrSpy(t)
  const port = await freePort()
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, redisOptions: { retryStrategy: () => 10 } })
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.equal(stderr.length, 1)
  t.match(stderr[0], [{ err: { code: 'ECONNREFUSED' } }, /Redis connection error/])
  await store.close()
})

t.test('a server whose identity cannot be checked is never trusted: lookups are refused (bypass), and caching starts once the check succeeds', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const admin = server.client()
  t.teardown(() => admin.disconnect())
  // The identity key holding the wrong type makes the check fail (WRONGTYPE), as a fault would.
  await admin.hset('blocked:server', 'x', '1')
  const { lines, logger } = recorder()
  const client = server.client()
  t.teardown(() => client.disconnect())
  const cache = new GenerationalCache({ store: new RedisStore({ client }), prefix: 'blocked', logger, timeout: 2000 })
  await t.rejects(async () => cache.lookup([], 'rk'), { code: 'GC_STORE_UNAVAILABLE', message: /identity is not verified/ })
  t.match(lines.find((l) => l.level === 'error'), { obj: { err: { message: /WRONGTYPE/ } }, msg: /store identity check failed/ })
  await admin.del('blocked:server')
  const end = Date.now() + 5000
  let found: unknown
  while (found === undefined && Date.now() < end) {
    found = await Promise.resolve()
      .then(() => cache.lookup([], 'rk'))
      .catch(() => undefined)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(found, 'the retried check (once a second) succeeded and lookups are trusted again')
  t.equal(await admin.get('blocked:server'), server.runId(), 'the run_id is recorded in the server’s own data')
  await cache.close()
})

t.test('a Cluster client that reads from replicas is refused: a replica may not have an acknowledged bump yet', async (t) => {
  for (const scaleReads of ['slave', 'all'] as const) {
    const client = new Cluster([{ host: '127.0.0.1', port: 1 }], { scaleReads, lazyConnect: true })
    t.throws(() => new RedisStore({ client }), { code: 'GC_INVALID_OPTION', message: new RegExp(`scaleReads: "${scaleReads}"`) })
  }
  const custom = new Cluster([{ host: '127.0.0.1', port: 1 }], { scaleReads: (nodes: unknown[]) => nodes[0], lazyConnect: true })
  t.throws(() => new RedisStore({ client: custom }), { message: /scaleReads: a function/ })
  const primaries = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true })
  const store = new RedisStore({ client: primaries })
  await store.close()
  primaries.disconnect()
})

t.test('a reconnection to the same server, or a second cache on the store, finds the same identity: no cold cache', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const { lines, logger } = recorder()
  const client = server.client()
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client })
  const cache = new GenerationalCache({ store, prefix: 'same', logger })
  const first = await cache.lookup([], 'rk')
  await cache.write(first.entryKey, Buffer.from('x'), 60_000)
  client.disconnect(true)
  const end = Date.now() + 5000
  let again: Awaited<ReturnType<typeof cache.lookup>> | undefined
  while (again === undefined && Date.now() < end) again = await Promise.resolve(cache.lookup([], 'rk')).catch(() => undefined)
  t.equal(again?.entry?.toString(), 'x', 'still a hit after reconnecting to the same server')
  const second = new GenerationalCache({ store, prefix: 'same', logger })
  t.equal((await second.lookup([], 'rk')).entry?.toString(), 'x', 'and for a second cache attached later')
  t.notOk(lines.some((l) => /not the one its data was written under/.test(l.msg ?? '')), 'the epoch was never moved')
})

/** A store whose server is frozen (SIGSTOP) before a cache's identity check: the check hangs, nothing is trusted. */
async function storeOnFrozenServer(t: Test, prefix: string): Promise<{ store: RedisStore; client: Redis }> {
  const server = await startRedis()
  t.teardown(async () => {
    server.thaw()
    await server.stop()
  })
  const client = server.client()
  t.teardown(() => client.disconnect())
  await client.ping()
  const store = new RedisStore({ client })
  server.freeze()
  store.attach({ prefix, epochKey: `${prefix}:epoch`, logger: silent, reportFault() {} })
  return { store, client }
}

t.test('while no connection is verified, lookups wait for the check, at most MAX_WAITERS of them; closing the store releases them', async (t) => {
  const { store, client } = await storeOnFrozenServer(t, 'w')
  const waiting = Array.from({ length: 10_000 }, () => store.lookup([], 'rk', 'w:e:').catch((err: unknown) => err))
  await t.rejects(store.lookup([], 'rk', 'w:e:'), { code: 'GC_STORE_UNAVAILABLE' }, 'past the bound, a lookup fails at once')
  await store.close()
  client.disconnect()
  const settled = await Promise.all(waiting)
  t.ok(settled.every((err) => (err as { code?: string }).code === 'GC_STORE_UNAVAILABLE'), 'every waiting lookup is released by close')
})

t.test('connection events while a lookup waits for the check do not use up its runs: a new client\'s first lookup is answered', async (t) => {
  // A new Cluster client connects, readies and checks node after node: many events before it is trusted (this failed a CI run).
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = server.client()
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client })
  store.attach({ prefix: 'ev', epochKey: 'ev:epoch', logger: silent, reportFault() {} })
  const lookup = store.lookup(['ev:v:a', 'ev:v:b'], 'rk', 'ev:e:')
  for (let i = 0; i < 5; i++) {
    await Promise.resolve()
    client.emit('connect')
  }
  t.equal((await lookup).versions.length, 2, 'the versions were read once the connection was checked')
})

t.test('a lookup waits for a check that never ends for a bounded time, then is refused', async (t) => {
  const { store } = await storeOnFrozenServer(t, 'nv')
  await t.rejects(store.lookup([], 'rk', 'nv:e:'), { code: 'GC_STORE_UNAVAILABLE', message: /identity is not verified/ })
  await store.close()
})

t.test('a bump of 125,000 keys reaches Redis (in chunks: one call spread its arguments past the stack)', async (t) => {
  const server = await startRedis()
  t.teardown(() => server.stop())
  const client = server.client()
  t.teardown(() => client.disconnect())
  const { lines, logger } = recorder()
  const cache = new GenerationalCache({ store: new RedisStore({ client }), prefix: 'many', logger, timeout: 5000 })
  const keys = Array.from({ length: 125_000 }, (_, i) => `many:v:${i}`)
  t.equal(await cache.bumpKeys(keys), true)
  t.equal(lines.length, 0, 'no fault')
  t.equal(await client.dbsize(), 125_000 + 1, 'every key bumped (and the identity key)')
})
