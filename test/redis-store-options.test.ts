import t from 'tap'
import { createServer } from 'node:net'
import { Generations } from '../lib/core/generations.js'
import { RedisStore } from '../lib/index.js'
import type { RedisSingleFlight } from '../lib/store/redis-single-flight.js'
import { startRedis } from './helpers/redis.js'
import { until } from './helpers/faulty-store.js'

/**
 * RedisStore's options and what they lead to: the URL it accepts, the ioredis
 * options it passes on, the memo bound, the fleet single flight, and where an
 * owned connection's errors go. test/redis-store.test.ts has the rest.
 */

const server = await startRedis()
const admin = server.client()
t.teardown(async () => {
  admin.disconnect()
  await server.stop()
})

async function freePort(): Promise<number> {
  const probe = createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const { port } = probe.address() as { port: number }
  await new Promise((resolve) => probe.close(resolve))
  return port
}

t.test('url: redis:// or rediss:// at its start, nothing else', async (t) => {
  for (const url of ['xredis://127.0.0.1:6379', 'http://h/?u=redis://127.0.0.1', 'redis:/127.0.0.1', 'unix:///tmp/redis.sock']) {
    t.throws(() => new RedisStore({ url }), { code: 'GC_INVALID_OPTION', message: `RedisStore option url must be a redis:// or rediss:// URL, got ${JSON.stringify(url)}` })
  }
  const tls = new RedisStore({ url: 'rediss://127.0.0.1:1', redisOptions: { lazyConnect: true } })
  t.equal(tls.client.status, 'wait', 'a rediss:// URL is accepted (not connected: lazyConnect was passed on)')
  await tls.close()
})

t.test('redisOptions are passed to the connection the store opens', async (t) => {
  const store = new RedisStore({ url: server.url, redisOptions: { keyPrefix: 'owned:' } })
  t.teardown(() => store.close())
  const found = await store.lookup(['o:v'], 'rk', 'o:e:')
  await store.set(found.entryKey, Buffer.from('x'), 60_000)
  t.equal(await admin.exists('owned:o:v', `owned:${found.entryKey}`), 2, 'every key under the keyPrefix given')
  t.equal((await store.lookup(['o:v'], 'rk', 'o:e:')).entry?.toString(), 'x')
})

t.test('memoBytes: an integer of at least 1024', async (t) => {
  const client = server.client()
  t.teardown(() => client.disconnect())
  t.throws(() => new RedisStore({ client, memoBytes: 1023 }), { code: 'GC_INVALID_OPTION', message: 'RedisStore option memoBytes must be an integer of at least 1024, got 1023' })
  const smallest = new RedisStore({ client, memoBytes: 1024 })
  const found = await smallest.lookup(['m:v'], 'rk', 'm:e:')
  await smallest.set(found.entryKey, Buffer.from('m'), 60_000)
  t.equal((await smallest.lookup(['m:v'], 'rk', 'm:e:')).entry?.toString(), 'm', '1024 is accepted and works')
})

t.test('a bump remembers the versions it set: this process’s next lookup is one MGET', async (t) => {
  const client = server.client()
  t.teardown(() => client.disconnect())
  const store = new RedisStore({ client })
  const keys = ['mb:epoch', 'mb:v:a']
  await store.lookup(keys, 'rk', 'mb:e:')
  await store.bump(['mb:v:a'])
  await admin.config('RESETSTAT')
  const after = await store.lookup(keys, 'rk', 'mb:e:')
  const info = await admin.info('commandstats')
  const calls = Object.fromEntries([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1], Number(m[2])]).filter(([name]) => !['info', 'config|resetstat'].includes(name as string)))
  t.same(calls, { mget: 1 }, 'no second read for the moved version')
  t.equal(after.versions[1], await admin.get('mb:v:a'))
})

t.test('fleet single flight: off by default; made once, on first use, named after the first cache attached; none after close', async (t) => {
  const client = server.client()
  t.teardown(() => client.disconnect())
  t.equal(new RedisStore({ client }).singleFlight, undefined, 'off by default')
  const store = new RedisStore({ client, singleFlight: true })
  const logger = { warn() {}, error() {}, info() {} }
  const first = new Generations({ store, prefix: 'first', logger })
  const second = new Generations({ store, prefix: 'second', logger })
  const flight = store.singleFlight
  t.ok(flight, 'on when asked for')
  t.equal(store.singleFlight, flight, 'one per store')
  t.match((flight as RedisSingleFlight).leaseKey('first:e:abc'), /^first:l:/, 'lease keys under the first cache’s prefix')
  const unattached = new RedisStore({ client, singleFlight: true })
  t.match((unattached.singleFlight as RedisSingleFlight).leaseKey('gc:e:abc'), /^gc:l:/, 'gc when no cache is attached')
  await unattached.close()
  await first.close()
  void second
  t.equal(store.singleFlight, undefined, 'none once the store is closed')
})

t.test('an owned connection’s errors go to the attached cache’s logger', async (t) => {
  const port = await freePort()
  const errors: { obj: unknown; msg: string | undefined }[] = []
  const store = new RedisStore({ url: `redis://127.0.0.1:${port}`, redisOptions: { retryStrategy: () => 10 } })
  const gens = new Generations({ store, logger: { warn() {}, info() {}, error: (obj, msg) => void errors.push({ obj, msg }) } })
  await until(() => errors.length > 0, 'a connection error to be logged')
  t.match(errors[0], { obj: { err: { code: 'ECONNREFUSED' } }, msg: /store connection failed/ })
  await gens.close()
})
