import t from 'tap'
import type { Redis } from 'ioredis'
import { GenerationalCache, RedisStore, type Store } from '../lib/index.js'
import { encodeEntry, makeEntry } from '../lib/http/entry.js'
import { RedisCluster, startRedis } from './helpers/redis.js'
import { storeContract } from './helpers/store-contract.js'
import { until } from './helpers/faulty-store.js'

const server = await startRedis()
const client = server.client()
t.teardown(async () => {
  client.disconnect()
  await server.stop()
})

/** Calls per command since the last reset, from INFO commandstats (which counts commands run by scripts too). */
async function commandCalls(redis: Redis): Promise<Record<string, number>> {
  const info = await redis.info('commandstats')
  const calls: Record<string, number> = {}
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls[m[1] as string] = Number(m[2])
  delete calls.info
  delete calls['config|resetstat']
  return calls
}

/** The commands clients sent while `fn` ran, as MONITOR sees them (not those run inside scripts). */
async function clientCommands(fn: () => Promise<unknown>): Promise<string[]> {
  const base = server.client()
  const monitor = await base.monitor()
  const seen: string[] = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua') seen.push(String(args[0]).toLowerCase())
  })
  await fn()
  await client.ping()
  await new Promise((resolve) => setTimeout(resolve, 50))
  monitor.disconnect()
  base.disconnect()
  return seen.filter((c) => !['ping', 'info', 'hello', 'client', 'select'].includes(c))
}

t.test('RedisStore on a single node meets the store contract', (t) =>
  storeContract(t, {
    make: () => new RedisStore({ client }),
    loseVersions: async (_store: Store, keys: string[]) => {
      await client.del(...keys)
    }
  })
)

t.test('a hit on a single node is one plain MGET (test/redis-lookup.test.ts has the rest)', async (t) => {
  const store = new RedisStore({ client })
  const keys = ['rt:epoch', 'rt:v:a', 'rt:v:b']
  const found = await store.lookup(keys, 'rk', 'rt:e:')
  await store.set(found.entryKey, Buffer.from('x'), 1000)
  let hit: Buffer | undefined
  t.same(await clientCommands(async () => (hit = (await store.lookup(keys, 'rk', 'rt:e:')).entry)), ['mget'])
  t.equal(hit?.toString(), 'x')
})

t.test('entries are stored as raw bytes with a PX TTL', async (t) => {
  const store = new RedisStore({ client })
  const body = Buffer.from([0, 1, 2, 200, 255])
  const bytes = encodeEntry(makeEntry(200, { 'content-type': 'application/octet-stream' }, body, Date.now(), 30_000))
  const { entryKey } = await store.lookup(['raw:v'], 'rk', 'raw:e:')
  await store.set(entryKey, bytes, 30_000)
  const stored = await client.getBuffer(entryKey)
  t.ok(stored?.equals(bytes), 'the exact bytes')
  t.ok(stored?.subarray(stored.length - body.length).equals(body), 'the body unwrapped at the end: no base64, no JSON')
  const pttl = await client.pttl(entryKey)
  t.ok(pttl > 29_000 && pttl <= 30_000, `PX set (${pttl} ms)`)
  t.equal(await client.ttl('raw:v'), -1, 'version keys have no TTL')
})

t.test('no KEYS, SCAN, FLUSHDB or FLUSHALL, whatever the cache does', async (t) => {
  const cache = new GenerationalCache({ store: new RedisStore({ client }), prefix: 'never' })
  await client.config('RESETSTAT')
  const found = await cache.lookup(cache.versionKeys(['user:id'], { id: 1 }), 'rk')
  await cache.write(found.entryKey, Buffer.from('x'), 1000)
  await cache.bump('user:id', { id: 1 })
  await cache.clear()
  await cache.store.delete(found.entryKey)
  const used = Object.keys(await commandCalls(client))
  for (const forbidden of ['keys', 'scan', 'flushdb', 'flushall']) t.notOk(used.includes(forbidden), `no ${forbidden} (used: ${used.join(', ')})`)
  t.ok(used.includes('evalsha'))
})

t.test('clear() bumps one epoch key: O(1) whatever the number of entries', async (t) => {
  const cache = new GenerationalCache({ store: new RedisStore({ client }), prefix: 'flush' })
  for (let i = 0; i < 50; i++) {
    const found = await cache.lookup([], `rk${i}`)
    await cache.write(found.entryKey, Buffer.from('x'), 60_000)
  }
  t.same(await clientCommands(() => cache.clear()), ['evalsha'])
  t.equal((await cache.lookup([], 'rk1')).entry, undefined)
})

t.test('a caller-owned client is never closed; a url-owned one is', async (t) => {
  const caller = server.client()
  await new RedisStore({ client: caller }).close()
  t.equal(await caller.ping(), 'PONG')
  caller.disconnect()
  const owned = new RedisStore({ url: server.url })
  await owned.lookup(['own:v'], 'rk', 'own:e:')
  await owned.close()
  await until(() => owned.client.status === 'end', 'the owned connection to end')
  t.equal(owned.client.status, 'end')
})

t.test('bad options name what is wrong', async (t) => {
  t.throws(() => new RedisStore({}), { code: 'GC_INVALID_OPTION', message: /exactly one of option client .* or option url/ })
  t.throws(() => new RedisStore({ client, url: server.url }), { code: 'GC_INVALID_OPTION' })
  t.throws(() => new RedisStore({ url: 'localhost:6379' }), { code: 'GC_INVALID_OPTION', message: /option url must be a redis:\/\/ or rediss:\/\/ URL/ })
  t.throws(() => new RedisStore(null as never), { code: 'GC_INVALID_OPTION' })
  t.throws(() => new RedisStore({ client, memobytes: 1 } as never), { code: 'GC_INVALID_OPTION', message: 'RedisStore: unknown option "memobytes" (known: client, url, redisOptions, memoBytes, singleFlight)' })
})

t.test('a maxmemory-policy that evicts keys without TTL is warned about, once', async (t) => {
  const lru = await startRedis(['--maxmemory-policy', 'allkeys-lru'])
  const volatile = await startRedis(['--maxmemory-policy', 'volatile-lru'])
  const lruClient = lru.client()
  const volatileClient = volatile.client()
  t.teardown(async () => {
    lruClient.disconnect()
    volatileClient.disconnect()
    await lru.stop()
    await volatile.stop()
  })
  const warnings: string[] = []
  const logger = { warn: (_o: unknown, msg?: string) => warnings.push(msg ?? ''), error() {}, debug() {} }
  const store = new RedisStore({ client: lruClient })
  await store.checkServer(logger)
  await store.checkServer(logger)
  t.equal(warnings.length, 1)
  t.match(warnings[0], /maxmemory-policy is allkeys-lru, which may evict group version keys .*\(misses, never stale hits\)\. Prefer volatile-lru/)
  await new RedisStore({ client: volatileClient }).checkServer(logger)
  t.equal(warnings.length, 1, 'volatile-lru is fine')
  const debug: unknown[] = []
  const down = server.client()
  down.disconnect()
  await new RedisStore({ client: down }).checkServer({ warn() {}, error() {}, debug: (o) => debug.push(o) })
  t.equal(debug.length, 1, 'a server that cannot answer CONFIG is only a debug line')
})

t.test('Redis Cluster', async (t) => {
  const cluster = await RedisCluster.start()
  const clusterClient = cluster.client()
  t.teardown(async () => {
    await clusterClient.quit()
    await cluster.stop()
  })

  await t.test('meets the store contract', (t) =>
    storeContract(t, {
      make: () => new RedisStore({ client: clusterClient }),
      loseVersions: async (_store: Store, keys: string[]) => {
        for (const key of keys) await clusterClient.del(key)
      }
    })
  )

  await t.test('versions in different slots work with no CROSSSLOT error', async (t) => {
    const cache = new GenerationalCache({ store: new RedisStore({ client: clusterClient }), prefix: 'slots' })
    const keys = cache.versionKeys(['user:id', 'posts', ['a', 'b']], { id: 1, a: 2, b: 3 })
    const slots = new Set(await Promise.all([cache.epochKey, ...keys].map((k) => clusterClient.cluster('KEYSLOT', k) as Promise<number>)))
    t.ok(slots.size >= 3, `the keys spread over ${slots.size} slots`)
    const first = await cache.lookup(keys, 'rk')
    await cache.write(first.entryKey, Buffer.from('cached'), 60_000)
    t.equal((await cache.lookup(keys, 'rk')).entry?.toString(), 'cached')
    await cache.bumpMany(['user:id', 'posts'], { id: 1 })
    t.equal((await cache.lookup(keys, 'rk')).entry, undefined, 'bumped across slots')
    await cache.clear()
    t.equal(cache.getStats().errors, 0)
  })
})
